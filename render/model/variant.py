"""The DiT's weight variant: FP8, a separate DiT file (GGUF, or an original-layout checkpoint), LoRAs with their
scales. It changes the latents, so its description (resolved against the model) is part of every render key and
render manifest (`Engine.sampling_extras`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import UsageError


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    scale: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> LoraSpec:
        """`FILE` or `FILE:SCALE` (the scale a float; a path may itself hold colons)."""
        path, scale = spec, 1.0
        head, sep, tail = spec.rpartition(":")
        if sep and head:
            try:
                scale = float(tail)
                path = head
            except ValueError:
                pass
        p = Path(path).expanduser()
        if not p.is_file():
            raise UsageError(f"--lora {spec}: no such file {p}")
        return cls(p.resolve(), scale)


@dataclass(frozen=True)
class DiTVariant:
    fp8: bool = False  # Tencent's scaled fp8 file when the model has one, else fp8 storage (layerwise casting)
    dit_file: Path | None = None  # replaces the model's DiT weights: .gguf, or an original .pt / .safetensors
    loras: tuple[LoraSpec, ...] = ()

    @property
    def is_default(self) -> bool:
        return not self.fp8 and self.dit_file is None and not self.loras

    def check(self) -> None:
        if self.dit_file is not None:
            if not self.dit_file.is_file():
                raise UsageError(f"--dit {self.dit_file}: no such file")
            if self.dit_file.suffix not in (".gguf", ".pt", ".pth", ".safetensors"):
                raise UsageError(f"--dit {self.dit_file}: use a .gguf, .pt or .safetensors DiT file")
            if self.fp8 and self.dit_file.suffix == ".gguf":
                raise UsageError("--fp8 and a GGUF --dit do not combine: a GGUF file is already quantised")

    def describe(self, fp8_kind: str | None) -> dict[str, Any]:
        """JSON for render keys and manifests; {} for the model's own full-precision weights. `fp8_kind`: how the
        family does --fp8 for this model (`Family.fp8_kind`)."""
        from render.core.hashing import weights_identity

        if self.is_default:
            return {}
        out: dict[str, Any] = {}
        if self.fp8:
            out["fp8"] = fp8_kind
        if self.dit_file is not None:
            out["dit_file"] = {"name": self.dit_file.name, "identity": weights_identity(self.dit_file)}
        if self.loras:
            out["loras"] = [
                {"name": s.path.name, "identity": weights_identity(s.path), "scale": s.scale} for s in self.loras
            ]
        return out
