"""Layer 3: model folders and weights: layouts, weight files and checks, variants (fp8, GGUF, LoRA),
loading, offload."""
