"""The `hyv` command line: parse, call the libraries, print."""
