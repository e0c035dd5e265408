"""The family interface: everything that differs between model families, behind one class, so that the stages,
the plan and the engine stay generic (they name no model class). `render.families` holds one subclass per family
(HunyuanVideo, HunyuanVideo 1.5, ...) and the registry that picks one for a model (`family_of`).

A family says:
- what a model folder holds: its components per stage, their classes, its original layout, its configs;
- how to load them (text encoders, DiT in its weight variants, VAE, scheduler);
- text encoding: templates, crops, the tensors of its embeddings artifact (`TextEncoding`);
- how embeddings become the DiT's keyword arguments, and what each step feeds the DiT (`DiTInputs`);
- its defaults (settings profile, per-variant defaults), its attention processor, context-parallel plan and step
  cache hooks, its VAE's tiling knobs, the inputs the memory plan runs its modules on;
- its admin tools: tiny models, original -> diffusers conversion, downloads, text encoder extraction.

Optional abilities raise a UsageError naming the family (`unsupported`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from render.core.errors import UsageError
from render.core.settings import EncodeSettings, Profile, RenderSettings

if TYPE_CHECKING:
    from render.model.mapping import ModuleMap
    from render.model.ref import ModelRef
    from render.model.variant import DiTVariant

Shapes = dict[str, tuple[int, ...]]


@dataclass
class TextEncoders:
    """The loaded text encoders of a family (and their tokenizers), by component name, where they compute."""

    modules: dict[str, Any]  # component name -> model or tokenizer
    device: Any
    dtype: Any
    hooks: list[Any] = field(default_factory=list)  # model offloading: offload() moves a model back to the CPU

    def __getitem__(self, name: str) -> Any:
        return self.modules[name]


@dataclass(frozen=True)
class Template:
    """How a prompt is laid out for the text encoder: a name (recorded in manifests, checked at render), the text
    with "{}" where the prompt goes, and the tokens before the prompt that are cropped off."""

    name: str
    text: str
    crop_start: int


class TextEncoding:
    """A family's text encoding for one model: tokenizers are loaded (cheap: cache keys need them), the encoders
    are passed in when something is to be encoded (the engine loads them on the first cache miss)."""

    def template(self, frames: int) -> Template:
        raise NotImplementedError

    def key_record(self, template: Template) -> dict[str, Any]:
        """What of the template goes into the cache key (besides the prompt, settings, encoders and dtype)."""
        return {"template": template.text, "crop_start": template.crop_start}

    def encode(
        self, encoders: TextEncoders, prompts: list[str], template: Template, settings: EncodeSettings
    ) -> tuple[dict[str, Any], list[bool]]:
        """Tensors of a micro-batch (each [B, ...]) and whether each prompt was truncated."""
        raise NotImplementedError

    def encoder_record(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """What the manifest's "encoder" entry records of one prompt's tensors (their widths)."""
        return {}


@dataclass
class StepInputs:
    """What one render feeds the DiT besides the noisy latents and the timestep: the conditioning of the prompt
    (and of the negative prompt, with true CFG) as keyword arguments, how the latents become the DiT's input
    (`hidden`: e.g. condition channels appended), and keyword arguments that depend on the step (`per_step`)."""

    cond: dict[str, Any]
    uncond: dict[str, Any] | None = None
    hidden: Any = None  # Callable[[Tensor [B, C, T, H, W]], Tensor [B, C_in, T, H, W]] or None (the latents)
    per_step: Any = None  # Callable[[int, Tensor x_in [B, C, T, H, W], Tensor timesteps [N]], dict] or None


@dataclass(frozen=True)
class Released:
    """A released model of a family: the short name hyv knows it by, its hub id (diffusers layout), and its
    configs shipped with hyv (a folder in the diffusers layout without weights: `hyv plan` needs nothing else)."""

    name: str
    hub_id: str
    configs: Path


def unsupported(family: str, what: str) -> UsageError:
    return UsageError(f"{what} is not available for {family} models")


class Family:
    """The interface (see the module docstring). Subclasses set the data fields and override the methods."""

    name: str = ""
    pipeline_classes: tuple[str, ...] = ()  # model_index.json `_class_name`s this family runs
    stage_components: Mapping[str, tuple[str, ...]] = {}  # stage -> the component folders it loads
    weight_components: tuple[str, ...] = ()  # the components holding weights (a config and weight files)
    component_classes: Mapping[str, str] = {}  # weight component -> "library.ClassName"
    embedding_tensors: tuple[str, ...] = ()  # the tensors of an embeddings artifact
    text_streams: tuple[tuple[str, str], ...] = ()  # (tokens, mask) keyword pairs of the DiT's text inputs
    embedded_guidance: bool = False  # the DiT takes `guidance` (x 1000)
    profile: Profile = Profile()
    original_marker: str = ""  # what identifies its original layout in a folder (for messages)
    module_map: ModuleMap | None = None  # its original DiT's module names (LoRAs, fp8 maps), if it has any
    noise_in_dit_dtype: bool = False  # the initial noise is drawn in the DiT's dtype (else float32)
    cache_kinds: tuple[str, ...] | None = None  # the step caches that work on its DiT (None: every kind)
    released: tuple[Released, ...] = ()  # its released models, with their shipped configs

    # ------------------------------------------------------------------ model folders

    def find_original(self, path: Path, source: str) -> ModelRef | None:
        """The model in this family's original layout at `path` (or a folder inside it), else None."""
        return None

    def config(self, model: ModelRef, name: str) -> dict[str, Any]:
        """A component's config in diffusers' terms (the original layout's translated or inferred)."""
        return model.config(name)

    def profile_for(self, model: ModelRef) -> Profile:
        """The settings profile for this model (its size multiple may depend on its VAE and patch)."""
        return self.profile

    def defaults(self, model: ModelRef) -> dict[str, Any]:
        """Settings defaults of this model (its variant), below the model's hyv.json and above hyv's."""
        return {}

    def vae_factors(self, model: ModelRef) -> tuple[int, int, int]:
        """(latent channels, temporal compression, spatial compression) from the VAE's config."""
        cfg = self.config(model, "vae")
        return (
            int(cfg["latent_channels"]),
            int(cfg.get("temporal_compression_ratio", 4)),
            int(cfg["spatial_compression_ratio"]),
        )

    def component_weights(
        self, model: ModelRef, name: str, variant: DiTVariant
    ) -> tuple[Shapes, list[Path], dict[str, Any]] | None:
        """(tensor shapes under diffusers' names, the files, the config) of a weight component, or None for a
        diffusers folder (checked generically)."""
        return None

    def built_in(self, model: ModelRef, name: str) -> str | None:
        """What stands in for a component the layout does not hold (e.g. a scheduler built from defaults), or None
        when the component is a folder to check."""
        return None

    def fp8_kind(self, model: ModelRef, variant: DiTVariant) -> str | None:
        """How --fp8 is done: "layerwise" (fp8 storage), a family's own scaled fp8 file, or None."""
        return "layerwise" if variant.fp8 else None

    def dit_config(self, model: ModelRef, variant: DiTVariant) -> dict[str, Any]:
        """The config of the DiT that will load (a --dit file may differ from the model's own)."""
        return self.config(model, "transformer")

    # ------------------------------------------------------------------ loading

    def load_text_encoders(self, model: ModelRef, device: Any, dtype: Any, offload: str) -> TextEncoders:
        raise NotImplementedError

    def load_transformer(self, model: ModelRef, variant: DiTVariant, dtype: Any) -> Any:
        """The DiT on the CPU in `dtype` in its weight variant (fp8, GGUF, LoRAs)."""
        raise NotImplementedError

    def load_vae(self, model: ModelRef, dtype: Any) -> Any:
        raise NotImplementedError

    def load_scheduler(self, model: ModelRef, shift: float) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(self.config(model, "scheduler"), shift=shift)

    def preload(self, stage: str) -> None:
        """Import the stage's model classes before its memory is measured (a stage's peak RSS is then its models
        and activations, not hundreds of MB of code)."""

    # ------------------------------------------------------------------ encode and render

    def text_encoding(self, model: ModelRef) -> TextEncoding:
        raise NotImplementedError

    def check_embeddings(
        self, dit_config: Mapping[str, Any], source: str, manifest: Mapping[str, Any], frames: int
    ) -> str | None:
        """Why embeddings (their manifest) do not fit the DiT of `source` and the frame count (a phrase that
        follows the file's name), or None when they do."""
        return None

    def step_inputs(
        self,
        cond: Mapping[str, Any],
        uncond: Mapping[str, Any] | None,
        s: RenderSettings,
        trim: bool,
        config: Mapping[str, Any],
    ) -> StepInputs:
        """The DiT's inputs for a render from the embeddings artifacts' tensors (`uncond`: the negative prompt's,
        with true CFG). `trim`: drop the text padding (render.sampling.attention), as every kernel but diffusers'
        masked one is given. `config`: the DiT's config."""
        raise NotImplementedError

    def conditioning(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """An embeddings artifact's tensors -> the DiT's conditioning keyword arguments."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the DiT's blocks: attention, caches, parallel

    def attention_blocks(self, transformer: Any) -> list[Any]:
        """The blocks whose attention hyv's processor runs (the token refiner's is left alone)."""
        raise NotImplementedError

    def processor(self, padding: Any) -> Any:
        """hyv's attention processor for one block; `padding` says per forward whether text padding is gone."""
        raise NotImplementedError

    def teacache(self) -> Any:
        """The family's TeaCache hook recipe (render.sampling.teacache.TeaCacheRecipe)."""
        raise unsupported(self.name, "teacache")

    def register_cache_blocks(self) -> None:
        """Register the DiT's block classes with diffusers' cache hooks when diffusers does not."""

    def cp_plan(self) -> dict[str, Any]:
        """The context-parallel plan of the DiT (diffusers' ContextParallelInput/Output by module)."""
        raise unsupported(self.name, "context parallel")

    # ------------------------------------------------------------------ the VAE

    def smaller_tiles(self, vae: Any, tiling: bool) -> bool:
        """Make the VAE's tiles smaller after an out-of-memory error; False at the floor."""
        return False

    def tile_record(self, vae: Any, tiling: bool, backoffs: int = 0) -> dict[str, Any]:
        """The VAE's tile sizes (recorded in a video's manifest)."""
        return {"backoffs": backoffs}

    # ------------------------------------------------------------------ the memory plan

    def plan_text_inputs(
        self, model: ModelRef, settings: EncodeSettings, frames: int
    ) -> list[tuple[str, int, dict[str, Any]]]:
        """(text encoder component, its tokens, more keyword arguments of its forward) for each text encoder."""
        raise NotImplementedError

    def plan_dit_inputs(
        self, dit_config: Mapping[str, Any], latent: tuple[int, ...], text_len: int, dtype: Any
    ) -> dict[str, Any]:
        """The DiT's keyword arguments (hidden_states included) for one forward on meta tensors; `latent`: the
        latents' shape [1, C, T, H, W]."""
        raise NotImplementedError

    def plan_dit_forward(self, module: Any, kwargs: dict[str, Any]) -> Any:
        """One forward of the DiT on the meta tensors `kwargs` (a family whose forward makes data-dependent choices
        runs its blocks on the shapes those choices give)."""
        return module(return_dict=False, **kwargs)[0]

    # ------------------------------------------------------------------ admin tools

    def init_tiny(self, directory: Path, preset: str, seed: int) -> None:
        """Write a randomly initialised model of this family in the diffusers layout (into an empty folder)."""
        raise unsupported(self.name, "init-tiny")

    def tiny_presets(self) -> tuple[str, ...]:
        return ()

    def convert_original(self, src: ModelRef, out: Path, max_shard_size: str) -> None:
        """Write an original-layout model into `out` (an empty folder) in the diffusers layout."""
        raise unsupported(self.name, "converting from the original layout")

    def fetch_list(self, layout: str, fp8: bool) -> list[Any]:
        """What `hyv models download` fetches (render.model.download.Fetch) for a layout."""
        raise unsupported(self.name, "download")

    def after_download(self, directory: Path, say: Any) -> None:
        """What a download does once the files are there (e.g. extract a text encoder)."""

    def prepare_text_encoder(self, src: Path, dst: Path, *, dtype_name: str, force: bool) -> Path:
        raise unsupported(self.name, "prepare-text-encoder")
