"""Typed, frozen settings for every stage. Defaults are defined here once; `render.core.resolve` fills them in from
the user's flags and the model's `hyv.json`, and the CLI reads its help texts from here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from render.core.errors import SettingsError

# Upstream's default negative prompt, used when true CFG is on (cfg_scale > 1) and none is given.
DEFAULT_NEG_PROMPT = (
    "Aerial view, aerial view, overexposed, low quality, deformation, a poor composition, bad hands, bad teeth, "
    "bad eyes, bad limbs, distortion"
)

# Resolution presets (height, width) for 129 frames, from the HunyuanVideo release.
SIZE_PRESETS: dict[str, dict[str, tuple[int, int]]] = {
    "720p": {
        "16:9": (720, 1280),
        "9:16": (1280, 720),
        "4:3": (832, 1104),
        "3:4": (1104, 832),
        "1:1": (960, 960),
    },
    "540p": {"16:9": (544, 960), "9:16": (960, 544), "4:3": (624, 832), "3:4": (832, 624), "1:1": (720, 720)},
}

# The choice lists every front end shows and every check uses (defined here once).
ATTENTION_CHOICES = (
    "auto", "masked", "native", "flash", "flash_varlen", "sage", "sage_varlen", "flex", "_native_cudnn",
)  # fmt: skip
OFFLOAD_MODES = ("none", "model", "group", "sequential", "auto")  # render.model.offload
CONCRETE_MODES = ("none", "model", "group", "sequential")
EXACT_ATTENTION = ("auto", "masked", "native", "flash", "flash_varlen", "flex", "_native_cudnn")
SR_TARGETS = ("720p", "1080p")  # super-resolution (--sr, `hyv upscale --to`): the families that have it take these
MAX_VIDEOS = 10_000  # videos of one prompt in one run: more is a typo, not a plan

# Settings a .jsonl item may override for itself, with their types (`name`, the file-name label, is an item field).
ITEM_OVERRIDES: dict[str, type] = {
    "seed": int,
    "num_videos": int,
    "neg_prompt": str,
    "frames": int,
    "height": int,
    "width": int,
    "steps": int,
    "cache": str,
}


@dataclass(frozen=True)
class Placement:
    """Where a stage runs. "auto" means cuda when present, else cpu; dtype "auto" means the stage's GPU default
    (text encoders fp16, DiT bf16, VAE fp16) on cuda and fp32 on cpu; `offload` where the weights wait while the
    stage computes (render.model.offload)."""

    device: str = "auto"
    dtype: str = "auto"
    offload: str = "none"  # none | model | group | sequential | auto (render.model.offload)

    def check(self) -> None:
        if self.offload not in OFFLOAD_MODES:
            raise SettingsError(f"unknown offload mode {self.offload!r}; use {', '.join(OFFLOAD_MODES)}")


@dataclass(frozen=True)
class EncodeSettings:
    text_len: int = 256  # Llama tokens kept after cropping the template
    skip_layers: int = 2  # output = hidden_states[-(skip_layers + 1)]
    clip_len: int = 77
    batch_size: int = 1  # prompts per encoder forward; 1 keeps each embedding independent of its batch
    placement: Placement = field(default_factory=Placement)

    def check(self) -> None:
        if self.text_len < 1:
            raise SettingsError(f"text length must be at least 1, got {self.text_len}")
        if self.skip_layers < 0:
            raise SettingsError(f"skip layers must be >= 0, got {self.skip_layers}")
        if self.clip_len < 1:
            raise SettingsError(f"clip length must be at least 1, got {self.clip_len}")
        if self.batch_size < 1:
            raise SettingsError(f"encode batch size must be at least 1, got {self.batch_size}")

    def text_record(self) -> dict[str, int]:
        """The settings that change an embedding (and so its cache key): text_len, skip_layers, clip_len."""
        return {"text_len": self.text_len, "skip_layers": self.skip_layers, "clip_len": self.clip_len}


@dataclass(frozen=True)
class RenderSettings:
    frames: int = 129
    height: int = 720
    width: int = 1280
    steps: int = 50
    seed: int = 42
    num_videos: int = 1  # video i uses seed + i
    guidance: float = 6.0  # embedded (distilled) guidance, fed to the DiT as guidance * 1000
    shift: float = 7.0  # flow shift of the sigma schedule
    cfg_scale: float = 1.0  # true CFG; > 1 runs a second forward on the negative prompt
    neg_prompt: str | None = None  # None with cfg_scale > 1 means DEFAULT_NEG_PROMPT
    save_every: int = 0  # keep a resumable checkpoint every K steps (0: off)
    stop_at: int | None = None  # stop after this many steps of the schedule (a preview), resumable
    cache: str = "none"  # a step cache: none | fbcache[:T] | teacache[:T] | magcache[:T] | taylorseer[:N] | ...
    cache_quality: str | None = None  # "30db": the threshold `hyv calibrate` chose for that quality
    attention: str = "auto"  # the attention kernel (render.sampling.attention); "masked": diffusers' own, padding kept
    compile: bool = False  # torch.compile the DiT's repeated blocks (regional compilation)
    placement: Placement = field(default_factory=Placement)
    size_multiple: int = 16  # the model's: heights and widths are multiples of it (its Profile; not a flag)
    fit_image: bool = True  # image-to-video: the size follows the first frame's (its bucket) unless one was asked for

    def check(self) -> None:
        from render.core.cachespec import CacheSpec

        CacheSpec.parse(self.cache)
        if self.cache_quality is not None and not _is_quality(self.cache_quality):
            raise SettingsError(f"cache-quality is a PSNR in dB such as 30db, got {self.cache_quality!r}")
        if self.attention not in ATTENTION_CHOICES:
            raise SettingsError(f"unknown attention {self.attention!r}; use one of {', '.join(ATTENTION_CHOICES)}")
        if self.frames < 1 or (self.frames - 1) % 4 != 0:
            k = max(0, round((self.frames - 1) / 4))
            raise SettingsError(
                f"frames must be 4k+1 (1, 5, 9, ..., 129), got {self.frames}; try --frames {4 * k + 1}"
            )
        m = self.size_multiple
        for name, v in (("height", self.height), ("width", self.width)):
            if v < m or v % m != 0:
                fix = max(m, round(v / m) * m)
                raise SettingsError(f"{name} must be a positive multiple of {m}, got {v}; try --{name} {fix}")
        if self.steps < 1:
            raise SettingsError(f"steps must be at least 1, got {self.steps}")
        if not 1 <= self.num_videos <= MAX_VIDEOS:
            raise SettingsError(
                f"num-videos must be between 1 and {MAX_VIDEOS} a prompt, got {self.num_videos}; "
                "for more, list the prompt several times with other seeds in a .jsonl file"
            )
        if self.seed < 0 or self.seed >= 2**63:
            raise SettingsError(f"seed must be in [0, 2^63), got {self.seed}")
        if self.seed + self.num_videos - 1 >= 2**63:
            raise SettingsError(
                f"seed {self.seed} with {self.num_videos} videos goes past 2^63 - 1 (video i uses seed + i)"
            )
        for name, x in (("guidance", self.guidance), ("shift", self.shift), ("cfg-scale", self.cfg_scale)):
            if not math.isfinite(x):
                raise SettingsError(f"{name} must be a finite number, got {x}")
        if self.cfg_scale < 1.0:
            raise SettingsError(f"cfg-scale must be >= 1.0 (1.0 turns true CFG off), got {self.cfg_scale}")
        if self.shift <= 0:
            raise SettingsError(f"shift must be > 0, got {self.shift}")
        if self.save_every < 0:
            raise SettingsError(f"save-every must be >= 0, got {self.save_every}")
        if self.stop_at is not None and not (1 <= self.stop_at <= self.steps):
            raise SettingsError(f"stop-at must be between 1 and steps ({self.steps}), got {self.stop_at}")

    @property
    def negative_prompt(self) -> str | None:
        """The negative prompt in effect: only with true CFG."""
        if self.cfg_scale <= 1.0:
            return None
        return self.neg_prompt if self.neg_prompt is not None else DEFAULT_NEG_PROMPT

    def with_overrides(self, overrides: Mapping[str, Any]) -> RenderSettings:
        """This item's settings: a .jsonl record's overrides (ITEM_OVERRIDES) on top of these; checked."""
        s = replace(self, **{k: v for k, v in overrides.items() if k in ITEM_OVERRIDES})
        if "height" in overrides or "width" in overrides:
            s = replace(s, fit_image=False)
        if s != self:
            s.check()
        return s

    def videos(self) -> list[RenderSettings]:
        """One settings object per video: video i of a prompt uses seed + i."""
        return [replace(self, seed=self.seed + i, num_videos=1) for i in range(self.num_videos)]

    def sampling_record(self) -> dict[str, Any]:
        """Every setting that changes the latents (the seed is recorded per video)."""
        d = asdict(self)
        for k in ("placement", "save_every", "seed", "num_videos", "stop_at", "cache_quality", "compile",
                  "size_multiple", "fit_image"):  # fmt: skip
            d.pop(k)
        d["neg_prompt"] = self.negative_prompt
        # Left out when they change only the float rounding (records stay those of earlier renders); a step
        # cache (its threshold filled in) and a kernel that computes differently (sage: int8) are in.
        if d["cache"] == "none":
            d.pop("cache")
        if d["attention"] in EXACT_ATTENTION:
            d.pop("attention")
        return d


@dataclass(frozen=True)
class DecodeSettings:
    fps: int = 24
    format: str = "mp4"  # "mp4" (H.264, yuv420p) or "png" (a folder of lossless frames)
    tiling: bool = True  # VAE tiling; diffusers tiles only videos larger than one tile (256 px, 16 frames)
    crf: int = 17  # x264 quality: visually lossless
    placement: Placement = field(default_factory=Placement)

    def check(self) -> None:
        if self.fps < 1:
            raise SettingsError(f"fps must be at least 1, got {self.fps}")
        if self.format not in ("mp4", "png"):
            raise SettingsError(f"format must be mp4 or png, got {self.format!r}")
        if not 0 <= self.crf <= 51:
            raise SettingsError(f"crf must be between 0 and 51, got {self.crf}")


@dataclass(frozen=True)
class UpscaleSettings:
    """Super-resolution between render and decode (`hyv run --sr`, `hyv upscale --to`): the target, or None (off).
    It runs on the render stage's placement and attention kernel; its steps and shift are its model's."""

    sr: str | None = None

    def check(self) -> None:
        if self.sr is not None and self.sr not in SR_TARGETS:
            raise SettingsError(f"unknown super-resolution target {self.sr!r}; use {' or '.join(SR_TARGETS)}")


@dataclass(frozen=True)
class Settings:
    """The settings of every stage, resolved once (`render.core.resolve.resolve_settings`) and checked."""

    encode: EncodeSettings = field(default_factory=EncodeSettings)
    render: RenderSettings = field(default_factory=RenderSettings)
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    upscale: UpscaleSettings = field(default_factory=UpscaleSettings)

    def check(self) -> None:
        self.encode.check()
        self.render.check()
        self.decode.check()
        self.upscale.check()


def _is_quality(text: str) -> bool:
    import re

    return re.fullmatch(r"\d+(\.\d+)?db", text.strip().lower()) is not None


@dataclass(frozen=True)
class Profile:
    """What a model family changes in the resolution of settings (`render.core.resolve`): its --size/--aspect
    presets and the flags it does not take (a flag given that does not apply is a usage error, never ignored).
    Its default values come with the model (`Family.defaults`), between the model's hyv.json and hyv's own."""

    family: str = "HunyuanVideo"
    sizes: Mapping[str, Mapping[str, tuple[int, int]]] = field(default_factory=lambda: SIZE_PRESETS)
    default_aspect: str = "16:9"
    refused: Mapping[str, str] = field(default_factory=dict)  # flag -> why this family does not take it
    size_multiple: int = 16  # heights and widths: multiples of the VAE's compression x the DiT's patch

    def size(self, size: str, aspect: str | None) -> tuple[int, int]:
        """(height, width) of a resolution preset."""
        if size not in self.sizes:
            raise SettingsError(f"unknown size {size!r} for {self.family}; use one of {', '.join(self.sizes)}")
        aspect = aspect or self.default_aspect
        if aspect not in self.sizes[size]:
            raise SettingsError(f"unknown aspect {aspect!r}; use one of {', '.join(self.sizes[size])}")
        return tuple(self.sizes[size][aspect])  # type: ignore[return-value]


def latent_shape(
    frames: int, height: int, width: int, factors: tuple[int, int, int]
) -> tuple[int, int, int, int, int]:
    """[B=1, C, T_lat, H / s, W / s] of a video, T_lat = (frames - 1) / t + 1, for a VAE's (latent channels,
    temporal compression t, spatial compression s)."""
    channels, t, s = factors
    return (1, channels, (frames - 1) // t + 1, height // s, width // s)


DEFAULTS = Settings()  # hyv's own defaults, for help texts and documentation
