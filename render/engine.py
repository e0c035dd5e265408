"""The engine: one model, its components' lifetimes, and the orchestration API every front end calls.

    from render import Engine
    engine = Engine(policy="keep-warm")                 # the bundled demo model; Engine("/path/to/model")
    report = engine.run(["a red circle moves up on a black background"], workdir="out")
    print(report.outcomes[0].video, engine.loads)

Components load on first use, on the placement the job asks for (another placement reloads them). Policy
"free-after-stage" (the batch default) frees each stage's models when the stage ends, so peak memory is the
largest stage; "keep-warm" keeps them for the next call (a server, a notebook rendering many prompts).
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from render.core.errors import SettingsError
from render.core.items import Item, Report
from render.core.progress import NullProgress, Progress
from render.core.resolve import Flags, resolve_settings
from render.core.settings import Placement, Settings
from render.model.loading import ModelRef, check_components, check_devices, resolve_model, resolve_placement
from render.model.variant import DiTVariant
from render.run.models import Loaded, Models

if TYPE_CHECKING:
    from render.plan import Plan
    from render.sampling.parallel import Group
    from render.stages.encode import TextEncoderStage
    from render.stages.render import DiTInfo

Policy = Literal["free-after-stage", "keep-warm"]
POLICIES: tuple[str, ...] = ("free-after-stage", "keep-warm")
ItemLike = Item | str | Path


def _mirrored(method: Callable[..., Report]) -> Callable[..., Report]:
    """An API call that, in a --parallel job, rank 0 leads and the other ranks mirror (render.sampling.mirror): they run
    its DiT forwards and return its report or raise its error."""

    @functools.wraps(method)
    def call(self: Engine, *args: Any, **kwargs: Any) -> Report:
        if self.parallel is None:
            return method(self, *args, **kwargs)
        from render.sampling.mirror import follow, lead

        report: Report = lead(self, lambda: method(self, *args, **kwargs)) if self.primary else follow(self)
        return report

    return call


class Engine(Models):
    def __init__(
        self,
        model: ModelRef | str | Path | None = None,
        *,
        policy: Policy = "free-after-stage",
        cache: Any = None,
        attention_kwargs: dict[str, Any] | None = None,
        variant: DiTVariant | None = None,
        parallel: str | None = None,
    ) -> None:
        """`model`: a directory, a hub id, a ModelRef, or None ($HYV_MODEL, else the bundled demo model).
        `cache`: a diffusers cache config (e.g. `FirstBlockCacheConfig(threshold=0.05)`) applied to the DiT with
        `enable_cache` when it loads; part of every render key. `attention_kwargs` go to every DiT forward.
        `variant`: the DiT's weights (FP8, a GGUF or original file, LoRAs); part of every render key.
        `parallel` ("ulysses:N", "ring:N", "ulysses:A,ring:B"): context parallel over the ranks of a torchrun
        job (render.sampling.parallel); every rank makes the same calls, rank 0 does the work and the others mirror its
        DiT forwards (render.sampling.mirror)."""
        if policy not in POLICIES:
            raise SettingsError(f"unknown policy {policy!r}; use {' or '.join(POLICIES)}")
        self.model = model if isinstance(model, ModelRef) else resolve_model(model)
        self.family = self.model.family
        self.policy = policy
        self.cache = cache
        self.attention_kwargs = attention_kwargs
        self.loads: Counter[str] = Counter()  # how many times each component was loaded
        self.clock = 1000.0  # the timestep the DiT computes now (set by the sampling loop through `tick`)
        self._held: dict[str, Loaded] = {}  # "encode" | "render" | "decode" -> the loaded model
        self._checked: set[str] = set()
        self._identities: dict[tuple[str, ...], str] = {}
        self._encode_stage: TextEncoderStage | None = None
        self._dit_info: DiTInfo | None = None
        self.variant = variant or DiTVariant()
        self.variant.check()
        self._variant_record: dict[str, Any] | None = None
        self._plan_settings: Settings | None = None  # what --offload auto plans for (the last call's settings)
        self.parallel: Group | None = None
        if parallel is not None:
            if cache is not None:
                raise SettingsError("a step cache and --parallel do not go together (ranks would skip apart)")
            from render.sampling.parallel import join

            self.parallel = join(parallel)  # collective: joins torchrun's process group

    @property
    def primary(self) -> bool:
        """Whether this process reports and writes: always, but for the ranks > 0 of a --parallel job."""
        return self.parallel is None or self.parallel.rank == 0

    # ------------------------------------------------------------------ settings and model facts

    def settings(self, flags: Flags | None = None, **given: Any) -> Settings:
        """Settings for this model: `flags` (or keyword flags) > the model's hyv.json > hyv's defaults."""
        return resolve_settings(flags or Flags(**given), self.model.defaults())

    def require(self, *stages: str) -> None:
        """Check once that the model has every component these stages need (configs only, no weights)."""
        for stage in stages:
            if stage not in self._checked:
                check_components(self.model, stage, self.variant)
                self._checked.add(stage)

    def identity(self, *components: str) -> str:
        """Weights identity of some components (configs hashed, weights sampled), computed once."""
        from render.core.hashing import weights_identity

        if components not in self._identities:
            self._identities[components] = weights_identity(*(self.model.component(c) for c in components))
        return self._identities[components]

    def dit_info(self) -> DiTInfo:
        from render.model.dit import dit_config
        from render.model.loading import vae_factors
        from render.stages.render import DiTInfo

        if self._dit_info is None:
            self.require("render")
            channels, t_ratio, s_ratio = vae_factors(self.model)
            self._dit_info = DiTInfo(
                source=self.model.source,
                config=dit_config(self.model, self.variant),
                identity=self.identity(*self.family.stage_components["render"]),
                channels=channels,
                t_ratio=t_ratio,
                s_ratio=s_ratio,
            )
        return self._dit_info

    def encode_stage(self) -> TextEncoderStage:
        """The tokenizers and cache keys of the text encoders (the encoders themselves load on first use)."""
        from render.stages.encode import TextEncoderStage

        if self._encode_stage is None:
            self.require("encode")
            self._encode_stage = TextEncoderStage(self)
        return self._encode_stage

    @staticmethod
    def dit_dtype_name(placement: Placement) -> str:
        _, dtype = resolve_placement(placement, "render")
        return str(dtype).removeprefix("torch.")

    def sampling_extras(self) -> dict[str, Any]:
        """What the engine adds to every render key and manifest: the step cache, when one is set, and the DiT's
        weight variant (FP8, GGUF, LoRAs), when not the model's own full-precision weights."""
        extras = {"cache": _describe(self.cache)} if self.cache is not None else {}
        if self._variant_record is None:
            self._variant_record = self.variant.describe(self.model)
        return {**extras, "weights": self._variant_record} if self._variant_record else extras

    def plan(self, settings: Settings | None = None, stages: Sequence[str] = ("encode", "render", "decode")) -> Plan:
        """The memory plan for these settings: each stage's peak device memory under each offload mode."""
        from render.plan import make_plan

        return make_plan(self.model, settings or self.settings(), self.variant, tuple(stages))

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

    # ------------------------------------------------------------------ the orchestration API

    def _call_settings(self, settings: Settings | None, *stages: str) -> Settings:
        """A call's settings (the model's defaults when none are given), remembered for --offload auto, with the
        devices of `stages` checked."""
        s = self._plan_settings = settings or self.settings()
        if stages:
            check_devices(s, *stages)
        return s

    @_mirrored
    def encode(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        use_cache: bool = True,
        progress: Progress | None = None,
    ) -> Report:
        """Prompts -> embeddings, one outcome per item (status done, cached or failed)."""
        from render.run import pipeline

        s = self._call_settings(settings, "encode")
        return pipeline.encode(self, _items(items), s, Path(workdir), use_cache, progress or NullProgress())

    @_mirrored
    def render(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        resume: bool = False,
        use_cache: bool = True,
        progress: Progress | None = None,
    ) -> Report:
        """Embeddings (given, or found by the prompt's content key) -> latents, one outcome per video."""
        from render.run import pipeline

        s = self._call_settings(settings, "render")
        return pipeline.render(
            self, _items(items), s, Path(workdir), resume, use_cache, progress or NullProgress()
        )

    @_mirrored
    def decode(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        progress: Progress | None = None,
    ) -> Report:
        """Latents -> videos with their manifests, one outcome per item."""
        from render.run import pipeline

        s = self._call_settings(settings, "decode")
        return pipeline.decode(self, _items(items), s, Path(workdir), progress or NullProgress())

    @_mirrored
    def run(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        resume: bool = False,
        use_cache: bool = True,
        progress: Progress | None = None,
        gpus: int | None = None,
        ray: str | None = None,
    ) -> Report:
        """Prompts -> videos, stage-major: every encode, then every render, then every decode. `gpus`: that many
        worker processes, one per device, each with its own items (render.scale.workers); `ray`: the batch on a Ray
        cluster at that address, or "auto" (render.scale.raycluster)."""
        from render.run import pipeline

        s = self._call_settings(settings)  # devices: checked in pipeline.run, after the run index
        args = (_items(items), s, Path(workdir), resume, use_cache, progress or NullProgress())
        if gpus is not None or ray is not None:
            from render.scale.scaleout import run_scaled

            return run_scaled(self, *args, gpus=gpus, ray=ray)
        return pipeline.run(self, *args)


def _items(items: Sequence[ItemLike]) -> list[Item]:
    if isinstance(items, (str, Path)):
        items = [items]
    return [Item.of(x, n) for n, x in enumerate(items, start=1)]


def _describe(config: Any) -> dict[str, Any]:
    """A cache config as JSON: its class and its fields (callables and tensors by their repr)."""
    is_instance = dataclasses.is_dataclass(config) and not isinstance(config, type)
    fields = dataclasses.asdict(config) if is_instance else dict(vars(config))
    safe = {
        k: v if isinstance(v, (int, float, str, bool, type(None), list, tuple)) else repr(v)
        for k, v in fields.items()
    }
    return {"kind": type(config).__name__, **safe}
