"""Reading weight files safely and cheaply: safetensors headers (no tensor data), `.pt` files with
`weights_only=True` and `mmap=True` (nothing unpickles arbitrary objects, nothing is read until used), GGUF headers.
Every failure is a `WeightsError`: one line naming the file."""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from render.core.errors import ModelNotFoundError, WeightsError

SAFETENSORS = ".safetensors"
PICKLED = (".pt", ".pth", ".bin", ".ckpt")
GGUF = ".gguf"
Shapes = dict[str, tuple[int, ...]]


def _truncated(path: Path, detail: str) -> WeightsError:
    return WeightsError(f"{path} is truncated or corrupt ({detail}); download it again")


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the file size (a truncated file is caught here
    without reading any tensor data)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8 or n > 100_000_000:
                raise _truncated(path, "its header is longer than the file")
            header = json.loads(f.read(n))
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _truncated(path, f"unreadable header: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise _truncated(path, "its header is not a table of tensors")
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    need = 8 + n + max(ends, default=0)
    if size < need:
        raise _truncated(path, f"{size:,} bytes, its header needs {need:,}")
    return header


def safetensors_shapes(path: Path) -> Shapes:
    return {k: tuple(v["shape"]) for k, v in safetensors_header(path).items() if k != "__metadata__"}


def check_zip(path: Path) -> None:
    """A `.pt` file is a zip archive; a truncated one has lost its central directory (read from the end)."""
    try:
        with zipfile.ZipFile(path) as z:
            size = path.stat().st_size
            for info in z.infolist():
                if info.header_offset + info.compress_size > size:
                    raise _truncated(path, f"{info.filename} runs past the end of the file")
    except zipfile.BadZipFile:
        raise _truncated(path, "not a complete zip archive (torch.save format)") from None


def load_pt(path: Path) -> Any:
    """torch.load with weights_only=True (plain tensors and containers only) and mmap=True (lazy)."""
    import pickle

    import torch

    check_zip(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "unsafe object"
        raise WeightsError(
            f"{path} holds objects other than tensors, which hyv does not unpickle ({first})"
        ) from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise _truncated(path, " ".join(str(exc).split())[:160]) from None


def unwrap_state_dict(obj: Any, path: Path) -> dict[str, Any]:
    """The state dict inside a checkpoint: DeepSpeed's "module", or "state_dict" / "model", else the dict."""
    import torch

    for key in ("module", "state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return dict(obj)


def gguf_shapes(path: Path) -> Shapes:
    """Logical (not quantised) shapes of a GGUF file's tensors, row-major like torch's."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise WeightsError(f"{path}: reading GGUF files needs the `gguf` package (pip install gguf)") from None
    try:
        reader = GGUFReader(path)
        return {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}
    except (ValueError, IndexError, OSError, KeyError, struct.error) as exc:
        raise _truncated(path, " ".join(str(exc).split())[:160] or type(exc).__name__) from None


def gguf_tensor_bytes(path: Path) -> dict[str, tuple[int, tuple[int, ...], bool]]:
    """name -> (bytes in the file, logical shape, quantised?) of a GGUF file's tensors (header only)."""
    from gguf import GGMLQuantizationType, GGUFReader

    plain = (GGMLQuantizationType.F32, GGMLQuantizationType.F16)
    try:
        reader = GGUFReader(path)
    except (ValueError, IndexError, OSError, KeyError, struct.error) as exc:
        raise _truncated(path, " ".join(str(exc).split())[:160] or type(exc).__name__) from None
    return {
        t.name: (int(t.n_bytes), tuple(int(d) for d in reversed(t.shape.tolist())), t.tensor_type not in plain)
        for t in reader.tensors
    }


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a component directory: the safetensors shards, else pickled checkpoints."""
    found = sorted(p for p in directory.iterdir() if p.name.endswith(SAFETENSORS))
    if not found:
        found = sorted(p for p in directory.iterdir() if p.suffix in PICKLED)
    return found


def file_shapes(path: Path) -> Shapes:
    """Tensor name -> shape of any weight file, reading as little as possible."""
    if path.name.endswith(SAFETENSORS):
        return safetensors_shapes(path)
    if path.suffix == GGUF:
        return gguf_shapes(path)
    sd = unwrap_state_dict(load_pt(path), path)
    return {k: tuple(v.shape) for k, v in sd.items()}


def folder_shapes(directory: Path) -> Shapes:
    """Tensor shapes of a component folder (every shard; a shard its index names but that is absent is an error)."""
    index = next(iter(sorted(directory.glob("*.safetensors.index.json"))), None)
    if index is not None:
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (json.JSONDecodeError, KeyError, TypeError):
            raise WeightsError(f"{index} is not a valid safetensors index") from None
        for s in sorted(shards):
            if not (directory / s).is_file():
                raise WeightsError(f"{directory / s} is missing (named by {index.name})")
    files = weight_files(directory)
    if not files:
        raise ModelNotFoundError(f"{directory} holds no weight files (.safetensors, .bin, .pt)")
    shapes: Shapes = {}
    for f in files:
        shapes.update(file_shapes(f))
    return shapes
