"""Layer 6: the stages: encode, render, decode, and getting the DiT ready for a render."""
