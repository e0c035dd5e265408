"""Layer 8: the single-process engine: model lifetimes, orchestration of items into stages,
the run index, calibration."""
