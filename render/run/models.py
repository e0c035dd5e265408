"""Model lifetimes, the engine's half that loads and frees: each stage's models load on first use, on the
placement a job asks for (another placement reloads them), and are freed after the stage or kept warm, as the
engine's policy says. `render.run.session.Session` is this plus the model's facts and the stages' contexts.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from render.core.placement import release_memory
from render.core.settings import Placement
from render.model.family import Family, TextEncoders, Upscaler
from render.model.loading import Loaded, load_text_encoders, load_transformer, load_upscaler, load_vae
from render.model.ref import ModelRef
from render.model.variant import DiTVariant

if TYPE_CHECKING:
    from typing_extensions import Self

    from render.sampling.parallel import Group


class Models:
    """Set by the session: what to load, how, and how long to keep it."""

    model: ModelRef
    family: Family
    policy: str
    cache: Any
    variant: DiTVariant
    parallel: Group | None
    loads: Counter[str]
    clock: float
    _held: dict[str, Loaded]

    def require(self, *stages: str) -> None:
        raise NotImplementedError

    def offload_mode(self, stage: str, placement: Placement) -> str:
        raise NotImplementedError

    def _get(self, stage: str, placement: Placement, load: Any) -> Loaded:
        held = self._held.get(stage)
        if held is not None and held.placement == placement:
            return held
        self.free(stage)
        self.require(stage)
        self._held[stage] = held = load()
        held.placement = placement
        return held

    def text_encoders(self, placement: Placement) -> TextEncoders:
        def load() -> Loaded:
            enc = load_text_encoders(self.model, self.family, placement, self.offload_mode("encode", placement))
            self.loads["text_encoders"] += 1
            return Loaded(enc, enc.device, enc.dtype, placement, enc.hooks)

        module: TextEncoders = self._get("encode", placement, load).module
        return module

    def image_encoders(self, placement: Placement) -> Any:
        """The family's image encoders (image-to-video), loaded on the encode stage's device after the text."""
        from render.core.placement import resolve_placement

        def load() -> Loaded:
            encoding = self.family.image_encoding(self.model)
            assert encoding is not None
            device, dtype = resolve_placement(placement, "encode")
            enc = encoding.load(self.model, device, dtype, self.offload_mode("encode", placement))
            self.loads["image_encoders"] += 1
            return Loaded(enc, device, dtype, placement, enc.get("hooks", []))

        return self._get("image", placement, load).module

    def transformer(self, placement: Placement) -> Loaded:
        from render.sampling.attention import install_processors
        from render.stages.speed import DiTState

        def load() -> Loaded:
            mode = self.offload_mode("render", placement)
            dit = load_transformer(self.model, self.family, placement, self.variant, mode)
            self.loads["transformer"] += 1
            self.family.register_cache_blocks()
            install_processors(dit.module, self.family)  # before a --parallel plan configures them
            if self.cache is not None:
                dit.module.enable_cache(self.cache)
            if self.parallel is not None:
                from render.sampling.mirror import enable

                enable(dit.module, self.parallel, placement, self.family)
            dit.state = DiTState()
            return dit

        return self._get("render", placement, load)

    def upscaler(self, up: Upscaler, placement: Placement) -> Loaded:
        """A super-resolution model (its DiT with hyv's attention processors; its upsampler in `parts`), held as
        the "upscale" stage's model: another target or placement reloads it."""
        from render.sampling.attention import install_processors
        from render.stages.speed import DiTState

        held = self._held.get("upscale")
        if held is not None and held.placement == placement and held.parts.get("source") == up.source and (
            held.parts.get("target") == up.target
        ):
            return held
        self.free("upscale")
        loaded = load_upscaler(self.family, up, placement, self.offload_mode("upscale", placement))
        self.loads["upscaler"] += 1
        install_processors(loaded.module, self.family)
        loaded.state = DiTState()
        self._held["upscale"] = loaded
        return loaded

    def vae(self, placement: Placement, *, tiling: bool) -> Loaded:
        def load() -> Loaded:
            vae = load_vae(self.model, self.family, placement, self.offload_mode("decode", placement))
            self.loads["vae"] += 1
            return vae

        held = self._get("decode", placement, load)
        if tiling != held.module.use_tiling:  # tiling acts only on videos larger than one tile
            held.module.enable_tiling() if tiling else held.module.disable_tiling()
        return held

    def tick(self, step: int, timestep: Any) -> None:
        """Called by the sampling loop before each step: hooks that follow the timestep read `clock`."""
        self.clock = float(timestep)

    def scheduler(self, shift: float) -> Any:
        """A fresh scheduler (it keeps per-render state) with the requested shift."""
        return self.family.load_scheduler(self.model, shift)

    def stage_done(self, stage: str) -> None:
        """The end of a stage: free its models unless the policy keeps them warm (model-offloaded ones then wait in
        CPU memory)."""
        if self.policy == "free-after-stage":
            self.free(stage)
        elif stage in self._held:
            for hook in self._held[stage].hooks:
                hook.offload()

    def free(self, *stages: str) -> None:
        """Drop the models of these stages (all stages when none is named) and give their memory back."""
        dropped = [self._held.pop(s) for s in (stages or tuple(self._held)) if s in self._held]
        if dropped:
            del dropped
            release_memory()

    def close(self) -> None:
        self.free()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
