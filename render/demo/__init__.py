"""The bundled demo model's world: synthetic shape videos with captions, and an evaluator that judges videos."""
