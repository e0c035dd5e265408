"""Files over HTTP: the page's static files, and videos and manifests from the work directory (with byte ranges,
which a browser's <video> asks for). Only plain names inside the one folder are served."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

STATIC = Path(__file__).parent / "static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".mp4": "video/mp4",
    ".json": "application/json; charset=utf-8",
    ".png": "image/png",
}
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1 << 16


def static_file(h: BaseHTTPRequestHandler, name: str) -> None:
    send_file(h, STATIC, name, cache="no-cache")


def send_file(h: BaseHTTPRequestHandler, folder: Path, quoted_name: str, cache: str = "no-store") -> None:
    name = unquote(quoted_name)
    path = folder / name
    if "/" in name or "\\" in name or "\0" in name or name.startswith(".") or not path.is_file():
        return _error(h, HTTPStatus.NOT_FOUND, f"no file {name!r}")
    size = path.stat().st_size
    start, end = 0, size - 1
    m = RANGE.match(h.headers.get("Range") or "")
    ranged = m is not None and bool(m.group(1) or m.group(2))
    if m is not None and ranged:
        first, last = m.group(1), m.group(2)
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:  # the last N bytes
            start = max(0, size - int(last))
        if start > end or start >= size:
            h.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            h.send_header("Content-Range", f"bytes */{size}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
    h.send_response(HTTPStatus.PARTIAL_CONTENT if ranged else HTTPStatus.OK)
    h.send_header("Content-Type", TYPES.get(path.suffix, "application/octet-stream"))
    h.send_header("Content-Length", str(end - start + 1))
    h.send_header("Accept-Ranges", "bytes")
    h.send_header("Cache-Control", cache)
    if ranged:
        h.send_header("Content-Range", f"bytes {start}-{end}/{size}")
    h.end_headers()
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            h.wfile.write(chunk)
            left -= len(chunk)


def _error(h: BaseHTTPRequestHandler, status: int, message: str) -> None:
    data = json.dumps({"error": message, "status": status}).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json; charset=utf-8")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
