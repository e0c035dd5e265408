"""A session: one model and its family in one process, the lifetimes of its components (`Models`), what can be known
of it before any weight loads (settings, identities, the DiT's config, the memory plan), and the contexts the
stages take (`encode_stage`, `render_context`, `decode_context`: the loaded components and loaders, never the
session itself). `render.run.local.LocalEngine` puts the orchestration API on top.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from render.core import hyvjson
from render.core.errors import SettingsError
from render.core.placement import check_devices
from render.core.resolve import Flags, resolve_settings
from render.core.settings import Placement, Settings
from render.families import family_of
from render.model.family import Upscaler
from render.model.loading import Loaded, check_components
from render.run.models import Models
from render.run.spec import POLICIES, EngineSpec

if TYPE_CHECKING:
    from render.plan import Plan
    from render.stages.decode import DecodeContext
    from render.stages.encode import TextEncoderStage
    from render.stages.images import ImageStage
    from render.stages.render import DiTInfo, RenderContext
    from render.stages.upscale import UpscaleContext


class Session(Models):
    def __init__(self, spec: EngineSpec, parallel: str | None = None) -> None:
        if spec.policy not in POLICIES:
            raise SettingsError(f"unknown policy {spec.policy!r}; use {' or '.join(POLICIES)}")
        spec.variant.check()
        self.spec = spec
        self.model = spec.model
        self.family = family_of(spec.model)
        self.policy = spec.policy
        self.cache = spec.cache
        self.attention_kwargs = spec.attention_kwargs
        self.variant = spec.variant
        self.loads: Counter[str] = Counter()  # how many times each component was loaded
        self.clock = 1000.0  # the timestep the DiT computes now (set by the sampling loop through `tick`)
        self._held: dict[str, Loaded] = {}  # "encode" | "render" | "decode" -> the loaded model
        self._checked: set[str | tuple[str, str]] = set()
        self._identities: dict[tuple[str, ...], str] = {}
        self._encode_stage: TextEncoderStage | None = None
        self._dit_info: DiTInfo | None = None
        self._variant_record: dict[str, Any] | None = None
        self._plan_settings: Settings | None = None  # what --offload auto plans for (the last call's settings)
        self._upscalers: dict[str, Upscaler] = {}
        self.parallel = None
        if parallel is not None:
            if spec.cache is not None:
                raise SettingsError("a step cache and --parallel do not go together (ranks would skip apart)")
            from render.sampling.parallel import join

            self.parallel = join(parallel)  # collective: joins torchrun's process group

    @property
    def primary(self) -> bool:
        """Whether this process reports and writes: always, but for the ranks > 0 of a --parallel job."""
        return self.parallel is None or self.parallel.rank == 0

    # ------------------------------------------------------------------ settings and model facts

    def settings(self, flags: Flags | None = None, **given: Any) -> Settings:
        """Settings for this model: `flags` (or keyword flags) > the model's hyv.json > its family's defaults for
        it > hyv's defaults."""
        defaults = {**self.family.defaults(self.model), **self.model.defaults()}
        return resolve_settings(flags or Flags(**given), defaults, self.family.profile_for(self.model))

    def require(self, *stages: str) -> None:
        """Check once that the model has every component these stages need (configs only, no weights)."""
        for stage in stages:
            if stage not in self._checked:
                check_components(self.model, self.family, stage, self.variant)
                self._checked.add(stage)

    def identity(self, *components: str) -> str:
        """Weights identity of some components (configs hashed, weights sampled), computed once."""
        from render.core.hashing import weights_identity

        if components not in self._identities:
            self._identities[components] = weights_identity(*(self.model.component(c) for c in components))
        return self._identities[components]

    def components(self) -> list[str]:
        """Every component folder the model's stages use."""
        return list(dict.fromkeys(c for stage in self.family.components_for(self.model).values() for c in stage))

    def calibration(self) -> dict[str, Any]:
        """The model's calibration from its hyv.json (`hyv calibrate`), or {}."""
        return hyvjson.section(self.model.path, "calibration")

    def dit_info(self) -> DiTInfo:
        from render.stages.render import DiTInfo

        if self._dit_info is None:
            self.require("render")
            channels, t_ratio, s_ratio = self.family.vae_factors(self.model)
            self._dit_info = DiTInfo(
                source=self.model.source,
                config=self.family.dit_config(self.model, self.variant),
                identity=self.identity(*self.family.components_for(self.model)["render"]),
                channels=channels,
                t_ratio=t_ratio,
                s_ratio=s_ratio,
            )
        return self._dit_info

    def sampling_extras(self) -> dict[str, Any]:
        """What the engine adds to every render key and manifest: the step cache, when one is set, and the DiT's
        weight variant (FP8, GGUF, LoRAs), when not the model's own full-precision weights."""
        extras = {"cache": _describe(self.cache)} if self.cache is not None else {}
        if self._variant_record is None:
            self._variant_record = self.variant.describe(self.family.fp8_kind(self.model, self.variant))
        return {**extras, "weights": self._variant_record} if self._variant_record else extras

    def upscaler_info(self, target: str) -> Upscaler:
        """The super-resolution model for a target, found (in --sr-model's folder, else the model's), not loaded:
        a one-line error when there is none or the family has no super-resolution."""
        if target not in self._upscalers:
            self._upscalers[target] = self.family.find_upscaler(self.model, target, self.spec.sr_model)
        return self._upscalers[target]

    def require_upscaler(self, target: str) -> None:
        """Check once that the super-resolution model is whole (headers against its configs: a truncated file is
        one line before any work, not after hours of rendering)."""
        from render.model.check import require_upscaler

        if ("upscale", target) not in self._checked:
            require_upscaler(self.family, self.upscaler_info(target))
            self._checked.add(("upscale", target))

    def upscaled_size(self, target: str, height: int, width: int) -> tuple[int, int]:
        """(H, W) of the video a base video of height x width upscales to; a SettingsError when there is none."""
        return self.family.upscaled_size(self.model, self.upscaler_info(target), height, width)

    def plan(self, settings: Settings | None = None, stages: Sequence[str] | None = None) -> Plan:
        """The memory plan for these settings: each stage's peak device memory under each offload mode (with
        super-resolution, its stage too, and the decode at the upscaled size)."""
        from render.plan import make_plan

        s = settings or self.settings()
        target = s.upscale.sr
        if stages is None:
            stages = ("encode", "render", "upscale", "decode") if target else ("encode", "render", "decode")
        up = self.upscaler_info(target) if target and ("upscale" in stages or "decode" in stages) else None
        return make_plan(self.model, self.family, s, self.variant, tuple(stages), up)

    def offload_mode(self, stage: str, placement: Placement) -> str:
        """The placement's offload mode; "auto": the plan's first mode that fits the device's free memory (the
        least-memory mode when none does)."""
        if placement.offload != "auto":
            return placement.offload
        from render.plan import free_memory, plan_device

        device = plan_device(placement.device)
        free = free_memory(placement.device if placement.device.startswith("cuda") else device)
        if device == "cpu" or free is None:
            return "none"
        plan = self.plan(self._plan_settings or self.settings(), (stage,))
        return plan.cheapest_fitting(stage, free) or "sequential"

    def call_settings(self, settings: Settings | None, *stages: str) -> Settings:
        """A call's settings (the model's defaults when none are given), remembered for --offload auto, with the
        devices of `stages` checked."""
        s = self._plan_settings = settings or self.settings()
        if stages:
            check_devices(s, *stages)
        return s

    # ------------------------------------------------------------------ what the stages take

    def encode_stage(self) -> TextEncoderStage:
        """The tokenizers and cache keys of the text encoders (the encoders themselves load on first use)."""
        from render.stages.encode import TextEncoderStage

        if self._encode_stage is None:
            self.require("encode")
            self._encode_stage = TextEncoderStage(
                self.family.text_encoding(self.model),
                self.identity(*self.family.components_for(self.model)["encode"]),
                self.model.source,
                self.text_encoders,
                lambda: self.family.preload("encode"),
            )
        return self._encode_stage

    def image_stage(self) -> ImageStage:
        """The first frames' stage of an image-to-video model (its encoders load on the first miss)."""
        from render.stages.images import ImageStage

        encoding = self.family.image_encoding(self.model)
        assert encoding is not None
        self.require("image")
        return ImageStage(
            encoding,
            self.identity(*self.family.components_for(self.model)["image"]),
            self.model.source,
            self.image_encoders,
            lambda: self.stage_done("image"),
        )

    def render_context(self) -> RenderContext:
        from render.stages import speed
        from render.stages.render import RenderContext

        calibration = self.calibration()
        return RenderContext(
            info=self.dit_info(),
            family=self.family,
            dit=self.transformer,
            scheduler=self.scheduler,
            prepare=lambda dit, s: speed.prepare(dit, s, self.family, calibration, lambda: int(self.clock)),
            extras=self.sampling_extras(),
            tick=self.tick,
            attention_kwargs=self.attention_kwargs,
            preload=lambda: self.family.preload("render"),
        )

    def upscale_context(self, target: str) -> UpscaleContext:
        from render.core.hashing import weights_identity
        from render.stages import speed
        from render.stages.upscale import UpscaleContext

        up = self.upscaler_info(target)
        key = ("upscale", up.source, target)
        if key not in self._identities:
            self._identities[key] = weights_identity(*up.components)
        _, _, s_ratio = self.family.vae_factors(self.model)
        return UpscaleContext(
            family=self.family,
            up=up,
            source=self.model.source,
            identity=self._identities[key],
            channels=self.family.vae_factors(self.model)[0],
            s_ratio=s_ratio,
            size=lambda h, w: self.family.upscaled_size(self.model, up, h, w),
            dit=lambda placement: self.upscaler(up, placement),
            prepare=lambda dit, s: speed.prepare(dit, s, self.family, {}, lambda: int(self.clock)),
            tick=self.tick,
            attention_kwargs=self.attention_kwargs,
            preload=lambda: self.family.preload("render"),
        )

    def decode_context(self) -> DecodeContext:
        from render.stages.decode import DecodeContext

        return DecodeContext(
            family=self.family,
            source=self.model.source,
            channels=self.family.vae_factors(self.model)[0],
            vae=lambda placement, tiling: self.vae(placement, tiling=tiling),
            identity=lambda: self.identity("vae"),
            preload=lambda: self.family.preload("decode"),
        )

    def concrete(self, s: Any) -> Any:
        """A render's settings with its cache threshold and attention kernel resolved (render.stages.speed)."""
        from render.stages.speed import concrete

        return concrete(
            s, self.calibration(), self.family, engine_cache=self.cache is not None, parallel=self.parallel is not None
        )


def _describe(config: Any) -> dict[str, Any]:
    """A cache config as JSON: its class and its fields (callables and tensors by their repr)."""
    is_instance = dataclasses.is_dataclass(config) and not isinstance(config, type)
    fields = dataclasses.asdict(config) if is_instance else dict(vars(config))
    safe = {
        k: v if isinstance(v, (int, float, str, bool, type(None), list, tuple)) else repr(v)
        for k, v in fields.items()
    }
    return {"kind": type(config).__name__, **safe}
