"""Layer 9: a batch over many devices: local worker processes and Ray."""
