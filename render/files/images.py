"""First frames given as images (`--image`, an `image` column): checked before any model loads, read once, named by
their content (the hash of their bytes goes into every key that depends on them).

An image that is missing, not an image, corrupt (truncated data), too large to decode safely, or of a mode that
cannot become RGB is a one-line UsageError naming the file. EXIF orientation is applied (a phone photo is upright).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import UsageError

MAX_PIXELS = 64_000_000  # 8000 x 8000: more is a mistake or a decompression bomb, not a first frame
MAX_BYTES = 200 << 20


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    sha256: str  # of the file's bytes: the image's identity
    width: int
    height: int


def check_image(path: Path) -> ImageInfo:
    """The image's identity and size, read from its header after a full decode check (cheap for a first frame)."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise UsageError(f"image {path} does not exist")
    if path.is_dir():
        raise UsageError(f"image {path} is a directory; give an image file (PNG, JPEG, WebP, ...)")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UsageError(f"image {path} is {size / 1e6:.0f} MB; hyv takes images up to {MAX_BYTES >> 20} MB")
    data = path.read_bytes()
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise UsageError(
                    f"image {path} is {w}x{h}: more than {MAX_PIXELS // 1_000_000} megapixels; resize it first"
                )
            im.load()  # a truncated or corrupt file fails here, not halfway through a batch
            rotated = _upright(im)
            w, h = rotated.size
    except UsageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise UsageError(f"{path} is not an image hyv can read (PNG, JPEG, WebP, BMP, ...)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UsageError(f"image {path} is truncated or corrupt ({' '.join(str(exc).split())[:120]})") from None
    return ImageInfo(path, "sha256:" + hashlib.sha256(data).hexdigest(), w, h)


def load_rgb(path: Path) -> Any:
    """The image as an upright RGB PIL image (an alpha channel dropped: PIL's `convert("RGB")`, as diffusers does)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return _upright(im).convert("RGB")


def _upright(im: Any) -> Any:
    from PIL import ImageOps

    return ImageOps.exif_transpose(im)
