"""hyv's video pipeline as a library: text encoding, DiT sampling, VAE decoding, model loading.

Importing this package is cheap: torch and diffusers are imported by the modules that need them.
"""

__version__ = "0.1.0"
