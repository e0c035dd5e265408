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

- super-resolution (optional): where its SR models are (`find_upscaler`), the size they make, loading them, the
  inputs of their sampling loop and their memory plan, converting and fetching them.

Optional abilities raise a UsageError naming the family (`unsupported`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from render.core.errors import UsageError
from render.core.settings import EncodeSettings, Profile, RenderSettings
from render.model.inputs import StepInputs, UpscaleInputs, Upscaler

__all__ = ["Family", "ImageEncoding", "StepInputs", "Template", "TextEncoders", "TextEncoding", "UpscaleInputs",
           "Upscaler", "unsupported"]  # fmt: skip

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

    sees_image = False  # its text encoder reads the first frame too (`encode` is given the images)

    def encode(
        self,
        encoders: TextEncoders,
        prompts: list[str],
        template: Template,
        settings: EncodeSettings,
        images: list[Path | None] | None = None,
    ) -> tuple[dict[str, Any], list[bool]]:
        """Tensors of a micro-batch (each [B, ...]) and whether each prompt was truncated. `images`: when the text
        encoder sees the first frame, each prompt's image file (None: a negative prompt's, which has none)."""
        raise NotImplementedError

    def encoder_record(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """What the manifest's "encoder" entry records of one prompt's tensors (their widths)."""
        return {}


class ImageEncoding:
    """A family's first-frame conditions for one image-to-video model: what an image becomes (tensors of an "image"
    artifact, cached by the image's content), computed in the encode stage after the text, with its own models."""

    components: tuple[str, ...] = ()  # the component folders it loads

    def size(self, width: int, height: int) -> tuple[int, int]:
        """(height, width) of the video an image of this size makes when no size is asked for (its bucket)."""
        raise NotImplementedError

    def key_record(self, height: int, width: int) -> dict[str, Any]:
        """What goes into the image artifact's key besides the image, the encoders and the dtype."""
        return {"height": height, "width": width}

    def load(self, model: ModelRef, device: Any, dtype: Any, offload: str) -> Any:
        raise NotImplementedError

    def encode(self, encoders: Any, image: Any, height: int, width: int) -> dict[str, Any]:
        """An RGB PIL image -> the artifact's tensors (each [1, ...]) for a video of height x width."""
        raise NotImplementedError


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

    def components_for(self, model: ModelRef) -> Mapping[str, tuple[str, ...]]:
        """This model's component folders per stage (an image-to-video model adds the "image" stage's)."""
        return self.stage_components

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

    def image_encoding(self, model: ModelRef) -> ImageEncoding | None:
        """The model's first-frame conditions, or None for a text-to-video model."""
        return None

    def image_required(self, model: ModelRef) -> bool:
        """Whether the model renders only from a first frame (an image-to-video model that does not also take zero
        image conditions for text-to-video)."""
        return False

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
        image: Mapping[str, Any] | None = None,
    ) -> StepInputs:
        """The DiT's inputs for a render from the embeddings artifacts' tensors (`uncond`: the negative prompt's,
        with true CFG). `trim`: drop the text padding (render.sampling.attention), as every kernel but diffusers'
        masked one is given. `config`: the DiT's config. `image`: the image artifact's tensors (image-to-video)."""
        raise NotImplementedError

    def conditioning(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """An embeddings artifact's tensors -> the DiT's conditioning keyword arguments."""
        raise NotImplementedError

    def dropped_frames(self, dit_config: Mapping[str, Any]) -> int:
        """Leading frames of the decoded video that are not part of the video (e.g. the frame an image-to-video
        model was given and the frames the VAE made of it); recorded in the latents' manifest, cut by decode."""
        return 0

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

    def plan_image_inputs(self, model: ModelRef, height: int, width: int) -> list[tuple[str, Any]]:
        """For each model of the encode stage's image half (image-to-video): (its component, a function that runs
        it on meta tensors as the image encoding does for a video of height x width)."""
        return []

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

    # ------------------------------------------------------------------ super-resolution (optional)

    upscale_targets: tuple[str, ...] = ()  # what `--sr` takes for this family ("720p", "1080p")

    def find_upscaler(self, model: ModelRef, target: str, where: Path | None) -> Upscaler:
        """The super-resolution model for `target`: in `where` (a folder given with --sr-model) or the model's
        folder; a ModelNotFoundError naming what was looked for when there is none."""
        raise unsupported(self.name, "super-resolution")

    def upscaled_size(self, model: ModelRef, up: Upscaler, height: int, width: int) -> tuple[int, int]:
        """(H, W) in pixels of the upscaled video of a base video of height x width; a SettingsError when the
        upscaler takes no video of that size."""
        raise unsupported(self.name, "super-resolution")

    def load_upscaler(self, up: Upscaler, dtype: Any) -> tuple[Any, Any]:
        """(the SR DiT in `dtype`, the upsampler) on the CPU."""
        raise unsupported(self.name, "super-resolution")

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
        """The loop's start: the prompt's conditioning `cond` (the embeddings artifact's tensors), the base video's
        latents [1, C, T, h, w], the upsampler on `device`, the upscaled latent size (H, W), the item's seed (every
        random draw comes from it), `trim`: drop the text padding; `image`: image-to-video's first frame, its image
        artifact's tensors framed for the upscaled size."""
        raise unsupported(self.name, "super-resolution")

    def plan_upsampler(self, up: Upscaler) -> Any:
        """The upsampler on the meta device, for the memory plan."""
        raise unsupported(self.name, "super-resolution")

    def upscaler_shapes(self, up: Upscaler) -> tuple[Shapes, list[Path]]:
        """(its DiT's tensor shapes under diffusers' names, the files read): headers only, for the checks."""
        raise unsupported(self.name, "super-resolution")

    def upscalers_in(self, path: Path) -> dict[str, Path]:
        """Targets of the super-resolution models in a folder (either layout) -> where, for `hyv models check`."""
        return {}

    def convert_upscalers(self, src: Path, out: Path, max_shard_size: str) -> list[str]:
        """Write the original-layout super-resolution models found in `src` into `out` in hyv's layout; returns
        their targets."""
        raise unsupported(self.name, "super-resolution")

    def upscaler_fetch_list(self, targets: tuple[str, ...]) -> list[Any]:
        """What `hyv models download --sr T` fetches (render.model.download.Fetch)."""
        raise unsupported(self.name, "super-resolution")

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
