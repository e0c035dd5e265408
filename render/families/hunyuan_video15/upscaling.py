"""HunyuanVideo 1.5's super-resolution as part of its family (the interface's optional SR methods): its SR models
found in a folder (Tencent's layout or hyv's), the bucket map, loading, the pass's inputs (render.families.
hunyuan_video15.sr), the plan's upsampler, conversion and downloads (sr_models)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from render.core.errors import ModelNotFoundError, SettingsError
from render.families.hunyuan_video15 import buckets
from render.model.family import Family, UpscaleInputs, Upscaler
from render.model.ref import ModelRef


class SuperResolution(Family):
    """The SR half of the HunyuanVideo 1.5 family (mixed into `HunyuanVideo15`)."""

    upscale_targets = ("720p", "1080p")

    def find_upscaler(self, model: ModelRef, target: str, where: Path | None) -> Upscaler:
        from render.families.hunyuan_video15 import sr_models

        if target not in self.upscale_targets:
            raise SettingsError(f"unknown super-resolution target {target!r}; use {' or '.join(self.upscale_targets)}")
        root = where if where is not None else model.path
        if where is not None and not where.is_dir():
            raise ModelNotFoundError(f"--sr-model {where} is not a directory")
        found = sr_models.find(root, target)
        if found is None:
            raise ModelNotFoundError(sr_models.missing_message(model.source, root, target))
        return found

    def upscaled_size(self, model: ModelRef, up: Upscaler, height: int, width: int) -> tuple[int, int]:
        """Tencent's bucket map: a base video on a bucket of the SR model's base target (480p: 640) goes to the
        bucket of its target (720p: 960) with the nearest aspect ratio (480x848 -> 720x1280; 720x1280 -> 1072x1904
        for 1080p). Sides are multiples of the VAE's compression x the DiT's patch, as the buckets are."""
        _, _, s = self.vae_factors(model)
        patch = s * int(up.config.get("patch_size", 1))
        lr, hr = int(up.facts["lr_target"]), int(up.facts["hr_target"])
        found = buckets.sr_bucket(height, width, lr, hr, patch)
        if found is None:
            name = next((k for k, v in buckets.TARGETS.items() if v == lr), f"target {lr}")
            example = buckets.bucket(9, 16, lr, patch)
            raise SettingsError(
                f"{height}x{width} has no super-resolution bucket: --sr {up.target} takes videos on a {name} bucket "
                f"of this model (e.g. {example[0]}x{example[1]}: render with --size {name}, or give such a "
                "--height/--width)"
                if name in buckets.TARGETS
                else f"{height}x{width} has no super-resolution bucket: --sr {up.target} takes videos on a bucket of "
                f"{lr}x{lr} pixels of this model (e.g. {example[0]}x{example[1]})"
            )
        return found

    def load_upscaler(self, up: Upscaler, dtype: Any) -> tuple[Any, Any]:
        from render.families.hunyuan_video15 import sr_models

        return sr_models.load_dit(up, dtype), sr_models.load_upsampler(up)

    def upscale_inputs(
        self,
        up: Upscaler,
        cond: Mapping[str, Any],
        lr_latents: Any,
        upsampler: Any,
        hr_latent: tuple[int, int],
        seed: int,
        trim: bool,
        device: Any,
        dtype: Any,
        image: Mapping[str, Any] | None = None,
    ) -> UpscaleInputs:
        from render.families.hunyuan_video15.sr import upscale_inputs

        return upscale_inputs(self, up, cond, lr_latents, upsampler, hr_latent, seed, trim, device, dtype, image)

    def plan_upsampler(self, up: Upscaler) -> Any:
        import torch

        from render.families.hunyuan_video15 import upsampler

        with torch.device("meta"):
            return upsampler.build(upsampler.read_config(up.components[1]))

    def upscaler_shapes(self, up: Upscaler) -> tuple[dict[str, tuple[int, ...]], list[Path]]:
        from render.families.hunyuan_video15 import sr_models
        from render.model.weightfiles import folder_shapes, weight_files

        d = up.components[0]
        shapes = sr_models.diffusers_shapes(d) if up.layout == "original" else folder_shapes(d)
        return shapes, weight_files(d)

    def upscalers_in(self, path: Path) -> dict[str, Path]:
        from render.families.hunyuan_video15 import sr_models

        return sr_models.found_in(path)

    def convert_upscalers(self, src: Path, out: Path, max_shard_size: str) -> list[str]:
        from render.families.hunyuan_video15 import sr_models

        return sr_models.convert(src, out, max_shard_size)

    def upscaler_fetch_list(self, targets: tuple[str, ...]) -> list[Any]:
        from render.families.hunyuan_video15 import sr_models

        bad = [t for t in targets if t not in self.upscale_targets]
        if bad:
            raise SettingsError(f"unknown super-resolution target {bad[0]!r}; use {' or '.join(self.upscale_targets)}")
        return sr_models.fetch_list(targets)
