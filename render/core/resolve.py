"""Settings resolution, in one place: the user's flags > the model's `hyv.json` defaults > hyv's defaults.

A front end (the CLI, a server, a notebook) passes what the user gave in a `Flags` (None: not given) and gets
frozen `Settings`, checked once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from render.core.errors import ModelNotFoundError, SettingsError
from render.core.settings import (
    DecodeSettings,
    EncodeSettings,
    Placement,
    Profile,
    RenderSettings,
    Settings,
    UpscaleSettings,
)


@dataclass(frozen=True)
class Flags:
    """What the user asked for; None means "not given" (then the model's default, then hyv's)."""

    # render
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    size: str | None = None  # a preset: 720p or 540p (with aspect); excludes height/width
    aspect: str | None = None
    steps: int | None = None
    seed: int | str | None = None  # "random": drawn now, then recorded like any seed
    num_videos: int | None = None
    guidance: float | None = None
    shift: float | None = None
    cfg_scale: float | None = None
    neg_prompt: str | None = None
    save_every: int | None = None
    stop_at: int | None = None
    cache: str | None = None  # a step cache, e.g. teacache:0.15 (render.sampling.caches)
    cache_quality: str | None = None  # e.g. 30db: the calibrated threshold for that quality
    attention: str | None = None  # auto | masked | native | flash | sage | ... (render.sampling.attention)
    compile: bool | None = None  # regional torch.compile of the DiT's blocks
    # encode
    text_len: int | None = None
    # super-resolution between render and decode (720p or 1080p)
    sr: str | None = None
    # decode
    fps: int | None = None
    format: str | None = None
    tiling: bool | None = None
    # placement of every stage
    device: str | None = None
    dtype: str | None = None
    offload: str | None = None  # none | model | group | sequential | auto
    text_encoder_device: str | None = None  # the encode stage's device (default: device)
    vae_device: str | None = None  # the decode stage's device (default: device)


def _fields(cls: type) -> dict[str, Any]:
    return {f.name: f.type for f in fields(cls) if f.name not in ("placement", "size_multiple", "fit_image")}


# Which settings object each default of a model's hyv.json belongs to.
_TARGETS: dict[str, type] = {
    **{name: EncodeSettings for name in _fields(EncodeSettings)},
    **{name: RenderSettings for name in _fields(RenderSettings)},
    **{name: DecodeSettings for name in _fields(DecodeSettings)},
}


def _accepts(type_name: str, value: Any) -> bool:
    """Whether a JSON value fits a settings field declared as `type_name` ("int", "float", "str | None", ...)."""
    if value is None:
        return "None" in type_name
    base = type_name.replace(" | None", "")
    if isinstance(value, bool):
        return base == "bool"
    return {
        "int": isinstance(value, int),
        "float": isinstance(value, (int, float)),
        "str": isinstance(value, str),
    }.get(base, False)


def check_model_defaults(defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A model's `hyv.json` defaults, each named like a setting and of its type."""
    out: dict[str, Any] = {}
    for key, value in defaults.items():
        if key not in _TARGETS:
            raise ModelNotFoundError(
                f"{where}: unknown default {key!r}; known: {', '.join(sorted(_TARGETS))}"
            )
        type_name = str(_fields(_TARGETS[key])[key])
        if not _accepts(type_name, value):
            raise ModelNotFoundError(f"{where}: default {key!r} must be of type {type_name}, got {value!r}")
        out[key] = float(value) if type_name == "float" else value
    return out


def _seed(value: int | str) -> int:
    """An int, a string of one, or "random" (a seed drawn from the system's entropy, in [0, 2^31))."""
    import secrets

    if isinstance(value, int):
        return value
    if value.strip().lower() == "random":
        return secrets.randbelow(2**31)
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"seed must be a whole number or 'random', got {value!r}") from None


def resolve_settings(
    flags: Flags, model_defaults: Mapping[str, Any] | None = None, profile: Profile | None = None
) -> Settings:
    """Flags > model defaults (its hyv.json, then its family's for this model) > hyv's defaults, for every stage;
    checked once. `profile`: the family's presets and the flags it refuses."""
    profile = profile or Profile()
    md = dict(model_defaults or {})
    given = {k: v for k, v in vars(flags).items() if v is not None}
    for name, why in profile.refused.items():
        if name in given:
            raise SettingsError(f"--{name.replace('_', '-')} does not apply to {profile.family}: {why}")
    if "seed" in given:
        given["seed"] = _seed(given["seed"])
    if "size" in given or "aspect" in given:
        if "size" not in given:
            sizes = " or ".join(profile.sizes)
            raise SettingsError(f"--aspect goes with --size ({sizes}); or give --height and --width")
        if "height" in given or "width" in given:
            raise SettingsError("give either --size/--aspect or --height/--width, not both")
        given["height"], given["width"] = profile.size(given["size"], given.get("aspect"))
    placement = Placement(**{k: given[k] for k in ("device", "dtype", "offload") if k in given})
    placement.check()
    stage_device = {
        EncodeSettings: given.get("text_encoder_device"),
        DecodeSettings: given.get("vae_device"),
    }

    def build(cls: type) -> Any:
        values = {}
        for name in _fields(cls):
            if name in given:
                values[name] = given[name]
            elif name in md:
                values[name] = md[name]
        own = stage_device.get(cls)
        return replace(cls(placement=replace(placement, device=own) if own else placement), **values)

    asked_size = any(k in given for k in ("height", "width", "size"))
    render = replace(build(RenderSettings), size_multiple=profile.size_multiple, fit_image=not asked_size)
    upscale = UpscaleSettings(sr=given.get("sr"))
    s = Settings(encode=build(EncodeSettings), render=render, decode=build(DecodeSettings), upscale=upscale)
    s.check()
    return s
