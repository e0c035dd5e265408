"""First frames uploaded to the server (image-to-video): `POST /api/images` with the image's bytes stores it in
`WORKDIR/uploads/` under its content hash, checked as `--image` checks a file; a job names it by that id
(`{"prompt": "...", "image": "<sha256>.png"}`). A job can name only uploads, never a path on the server.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from render.core.errors import UsageError
from render.core.fsutil import tmp_path_for
from render.files.images import check_image

MAX_UPLOAD = 32 << 20  # bytes in one upload: a first frame, not a photo archive
ID = re.compile(r"^[0-9a-f]{64}\.(png|jpg|webp|bmp|gif|tif)$")
SUFFIX = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "GIF": "gif", "TIFF": "tif"}


def folder(workdir: Path) -> Path:
    return workdir / "uploads"


def store(workdir: Path, data: bytes) -> dict[str, Any]:
    """Check the bytes as an image and keep them (once: the same image again is the same id). A UsageError (400)
    for bytes that are not an image hyv reads."""
    from PIL import Image

    where = folder(workdir)
    where.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(data).hexdigest()
    tmp = tmp_path_for(where / sha)
    try:
        tmp.write_bytes(data)
        try:
            info = check_image(tmp)
        except UsageError as exc:
            raise UsageError(str(exc).replace(str(tmp), "the upload")) from None
        with Image.open(tmp) as im:
            kind = SUFFIX.get(str(im.format))
        if kind is None:
            raise UsageError("the upload is an image format hyv does not keep; send PNG, JPEG or WebP")
        name = f"{sha}.{kind}"
        tmp.replace(where / name)
    finally:
        tmp.unlink(missing_ok=True)
    return {"image": name, "width": info.width, "height": info.height, "bytes": len(data)}


def resolve(workdir: Path, name: Any, where: str) -> Path:
    """The upload a job names; a UsageError for anything else (a path, an unknown id)."""
    if not isinstance(name, str) or not ID.match(name):
        raise UsageError(f"{where}`image` must be the id of an upload (POST /api/images), got {name!r}")
    path = folder(workdir) / name
    if not path.is_file():
        raise UsageError(f"{where}no uploaded image {name}; upload it first (POST /api/images)")
    return path
