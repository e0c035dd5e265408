"""Layer 2: what hyv reads and writes: artifacts, the work directory, the embedding cache, videos, prompt files."""
