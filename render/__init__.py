"""hyv's video pipeline as a library: text encoding, DiT sampling, VAE decoding, model loading.

    from render import Engine
    engine = Engine(policy="keep-warm")      # the bundled demo model, or Engine("/path/to/HunyuanVideo")
    report = engine.run(["a red circle moves up on a black background"], engine.settings(seed=7))

Importing this package is cheap: torch and diffusers are imported by the modules that need them, when needed.
"""

from render.core.items import Item, Outcome, Report
from render.core.resolve import Flags
from render.core.settings import Settings
from render.core.version import VERSION
from render.engine import Engine

__version__ = VERSION
__all__ = ["Engine", "Flags", "Item", "Outcome", "Report", "Settings", "__version__"]
