"""Is a model whole? Which components are present, missing or corrupt: truncated files (safetensors headers against
file sizes, `.pt` zip directories, GGUF headers) and tensors whose names or shapes do not fit the module built on
the meta device from the component's config. Reads headers only, so it takes seconds on the real 13B model.

`hyv models check` prints every component's status; `Engine.require` runs the same check for a stage's
components before the stage starts (a truncated VAE fails `hyv run` before anything is encoded)."""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from render.core.errors import ModelNotFoundError, WeightsError
from render.model.family import Family

if TYPE_CHECKING:
    from render.model.family import Upscaler
    from render.model.ref import ModelRef
    from render.model.variant import DiTVariant

Shapes = dict[str, tuple[int, ...]]


@dataclass
class Status:
    name: str
    state: str = "ok"  # ok | missing | corrupt
    detail: str = ""
    files: list[str] = field(default_factory=list)
    bytes: int = 0


def meta_module(family_class: str, config: dict[str, Any], directory: Path) -> Any:
    """The component's module built on the meta device from its config: names and shapes, no memory."""
    import torch

    lib, name = family_class.split(".", 1)
    cls = getattr(importlib.import_module(lib), name)
    with torch.device("meta"):
        if lib == "diffusers":
            return cls.from_config(config)
        return cls(cls.config_class.from_pretrained(directory))


def expected_shapes(module: Any) -> Shapes:
    """The tensors a checkpoint of `module` holds: its state dict without the second name of a tied weight (a T5's
    `encoder.embed_tokens.weight` is its `shared.weight`, saved once)."""
    own = {n for n, _ in module.named_parameters()} | {n for n, _ in module.named_buffers()}
    return {k: tuple(v.shape) for k, v in module.state_dict().items() if k in own}


def compare(expected: Shapes, found: Shapes, where: str) -> None:
    """Raise WeightsError when tensors are missing or shaped differently. Found names may carry one common prefix
    ("model." of a LlamaForCausalLM, "text_model." of a full CLIP checkpoint); extra tensors are ignored."""
    prefixes: Counter[str] = Counter()
    for k in list(expected)[:64]:
        for f in found:
            if f == k or f.endswith("." + k):
                prefixes[f[: len(f) - len(k)]] += 1
    prefix = prefixes.most_common(1)[0][0] if prefixes else ""
    missing = [k for k in expected if prefix + k not in found]
    wrong = [
        f"{k} {list(found[prefix + k])} (config: {list(s)})"
        for k, s in expected.items()
        if prefix + k in found and tuple(found[prefix + k]) != tuple(s)
    ]
    if wrong:
        raise WeightsError(f"{where}: {len(wrong)} tensor(s) do not fit the config, e.g. {'; '.join(wrong[:2])}")
    if missing:
        raise WeightsError(f"{where}: {len(missing)} tensor(s) missing, e.g. {', '.join(missing[:3])}")


def _weights_of(
    model: ModelRef, family: Family, name: str, variant: DiTVariant
) -> tuple[Shapes, list[Path], dict[str, Any]]:
    """(shapes under diffusers' names, the files read, the config) of one weight component."""
    from render.model.weightfiles import folder_shapes, weight_files

    found = family.component_weights(model, name, variant)
    if found is not None:
        return found
    d = model.component(name)
    diffusers = family.component_classes[name].startswith("diffusers.")  # built from a config dict
    config = family.config(model, name) if diffusers else {}
    return folder_shapes(d), weight_files(d), config


def check_component(model: ModelRef, family: Family, name: str, variant: DiTVariant) -> Status:
    """The status of one component (weights checked against the config for weight components)."""
    st = Status(name)
    d = model.component(name)
    built_in = family.built_in(model, name)
    if built_in is not None:
        st.detail = built_in
        return st
    if name == "transformer" and variant.dit_file is not None:
        pass  # the DiT comes from the --dit file
    elif not d.is_dir() or not any(d.iterdir()):
        return Status(name, "missing", f"no {d.relative_to(model.path) if d.is_relative_to(model.path) else d}")
    if name.startswith("tokenizer"):
        if not any(d.glob("tokenizer*")) and not any(d.glob("*.model")) and not any(d.glob("vocab*")):
            return Status(name, "missing", f"no tokenizer files in {d}")
        return st
    if name not in family.weight_components:
        return st
    try:
        shapes, files, config = _weights_of(model, family, name, variant)
        st.files = [str(f) for f in files]
        st.bytes = sum(f.stat().st_size for f in files)
        meta = meta_module(family.component_classes[name], config, d)
        expected = expected_shapes(meta)
        compare(expected, shapes, ", ".join(st.files) if len(files) <= 2 else f"{d} ({len(files)} files)")
    except WeightsError as exc:
        return Status(name, "corrupt", str(exc), st.files, st.bytes)
    except ModelNotFoundError as exc:
        return Status(name, "missing", str(exc), st.files, st.bytes)
    return st


def check_stage(model: ModelRef, family: Family, stage: str, variant: DiTVariant) -> None:
    """Raise one line for the first component of the stage that is missing or corrupt."""
    problems = [
        s
        for n in family.components_for(model)[stage]
        if (s := check_component(model, family, n, variant)).state != "ok"
    ]
    missing = [p for p in problems if p.state == "missing"]
    if missing:
        raise ModelNotFoundError(
            f"model {model.source} is incomplete for {stage}: missing "
            + ", ".join(f"{p.name} ({p.detail})" if p.detail else p.name for p in missing)
        )
    if problems:
        raise WeightsError(problems[0].detail)


def check_upscaler(family: Family, up: Upscaler) -> list[Status]:
    """The statuses of a super-resolution model's DiT and upsampler (`sr <target> transformer` / `upsampler`): their
    tensors (headers only) against the modules their configs build on the meta device."""
    from render.model.weightfiles import safetensors_shapes, weight_files

    out = []
    for part, d in zip(("transformer", "upsampler"), up.components, strict=True):
        st = Status(f"sr {up.target} {part}")
        try:
            if part == "transformer":
                shapes, files = family.upscaler_shapes(up)
                meta = meta_module(family.component_classes["transformer"], dict(up.config), d)
            else:
                files = weight_files(d)
                if not files:
                    raise ModelNotFoundError(f"{d} holds no weight files")
                shapes = safetensors_shapes(files[0])
                meta = family.plan_upsampler(up)
            st.files, st.bytes = [str(f) for f in files], sum(f.stat().st_size for f in files)
            compare(expected_shapes(meta), shapes, ", ".join(st.files) if len(files) <= 2 else str(d))
        except WeightsError as exc:
            st.state, st.detail = "corrupt", str(exc)
        except ModelNotFoundError as exc:
            st.state, st.detail = "missing", str(exc)
        out.append(st)
    return out


def require_upscaler(family: Family, up: Upscaler) -> None:
    """Raise one line when a super-resolution model is missing a part or holds a file that does not fit."""
    bad = [s for s in check_upscaler(family, up) if s.state != "ok"]
    if bad:
        err = ModelNotFoundError if bad[0].state == "missing" else WeightsError
        raise err(f"the {up.target} super-resolution model in {up.source} is {bad[0].state}: {bad[0].detail}")
