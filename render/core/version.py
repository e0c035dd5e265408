"""hyv's version, in one place (the package's `__version__` and every manifest's `versions.hyv`)."""

VERSION = "0.1.0"
