"""Layer 4: the sampling math and what plugs into the DiT: the Euler loop, attention kernels,
step caches, context parallel."""
