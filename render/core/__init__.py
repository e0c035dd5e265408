"""Layer 1: settings, errors, items, hashing and file-system helpers; imports nothing else of hyv."""
