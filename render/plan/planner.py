"""The memory plan: each stage's peak device memory under each offload mode, before anything loads.

The real modules are built on the meta device from the model's configs (no weights needed) and run on meta
tensors of the exact shapes under a memory tracker (render.plan.tracker): activations are measured, not
estimated. Weights are counted per module in their storage dtype (fp8: 1 byte; GGUF: the file's bytes). A mode
then decides which weights are on the device while a stage computes (render.model.offload):

- none: every model of the stage, whole (the engine frees a stage's models after it: peak = the largest stage);
- model: one model at a time, whole (the text encoders take turns);
- group: the blocks stream one at a time (+ the next one prefetched on CUDA), the rest stays;
- sequential: one leaf layer at a time (+ the next one on CUDA).

The VAE always loads whole (its weights are small, its activations are what matters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from render.core.settings import CONCRETE_MODES
from render.plan.tracker import FusedAttention, MemoryTracker, memoize_forward, memoize_inplace

if TYPE_CHECKING:
    from render.core.settings import EncodeSettings
    from render.model.family import Family, Upscaler
    from render.model.ref import ModelRef
    from render.model.variant import DiTVariant



@dataclass(frozen=True)
class Component:
    name: str
    weights: int  # bytes when whole on the device
    unmatched: int  # bytes outside its offloadable blocks (stays on the device under group offloading)
    largest_block: int
    largest_leaf: int
    activations: int  # peak bytes alive during its forward(s), its inputs included


@dataclass(frozen=True)
class StagePlan:
    stage: str
    device: str  # "cuda" or "cpu"
    dtype: str
    components: tuple[Component, ...]
    peaks: dict[str, int]  # offload mode -> peak device bytes

    @property
    def weights(self) -> int:
        return sum(c.weights for c in self.components)

    @property
    def activations(self) -> int:
        return max(c.activations for c in self.components)


@dataclass
class Plan:
    frames: int
    height: int
    width: int
    stages: list[StagePlan]
    variant: dict[str, Any] = field(default_factory=dict)
    upscaled: tuple[str, int, int] | None = None  # super-resolution: (target, height, width)

    def stage(self, name: str) -> StagePlan:
        return next(s for s in self.stages if s.stage == name)

    @property
    def all_resident(self) -> int:
        """Every model of every stage on the device at once (upstream's way) + the largest activations."""
        return sum(s.weights for s in self.stages) + max(s.activations for s in self.stages)

    def cheapest_fitting(self, stage: str, free: int) -> str | None:
        """The first mode (fastest first) whose peak fits `free` bytes with a 10% margin; None when none fits."""
        for mode in CONCRETE_MODES:
            if self.stage(stage).peaks[mode] * 1.1 <= free:
                return mode
        return None


def _stream_factor(device: str) -> int:
    return 2 if device == "cuda" else 1  # the next group is prefetched on a CUDA stream


def _peaks(components: tuple[Component, ...], device: str) -> dict[str, int]:
    k = _stream_factor(device)
    return {
        "none": sum(c.weights for c in components) + max(c.activations for c in components),
        "model": max(c.weights + c.activations for c in components),
        "group": max(c.unmatched + k * c.largest_block + c.activations for c in components),
        "sequential": max(k * c.largest_leaf + c.activations for c in components),
    }


def _storage(
    module: torch.nn.Module, dtype: torch.dtype, fp8: tuple[set[str], bool] | None = None
) -> dict[str, int]:
    """Bytes of each module's own parameters in their storage dtype. `fp8`: (layers stored in fp8, whether their
    biases are too: layerwise casting stores both, Tencent's scaled fp8 only the weights)."""
    out: dict[str, int] = {}
    names, bias = fp8 if fp8 is not None else (set(), False)
    for name, m in module.named_modules():
        n = 0
        for pname, p in m.named_parameters(recurse=False):
            one = 1 if name in names and (pname == "weight" or bias) else dtype.itemsize
            n += p.numel() * one
        if n:
            out[name] = n
    return out


def _component(name: str, module: torch.nn.Module, sizes: dict[str, int], activations: int) -> Component:
    blocks: dict[str, int] = {}
    for child_name, child in module.named_children():
        if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)):
            for i, _ in enumerate(child):
                prefix = f"{child_name}.{i}"
                blocks[prefix] = sum(v for k, v in sizes.items() if k == prefix or k.startswith(prefix + "."))
    total = sum(sizes.values())
    return Component(
        name,
        weights=total,
        unmatched=total - sum(blocks.values()),
        largest_block=max(blocks.values(), default=0),
        largest_leaf=max(sizes.values(), default=0),
        activations=activations,
    )


def _run(fn: Any, device: str, *, memo: tuple[torch.nn.Module, ...] = (), blends: Any = None) -> int:
    """Peak bytes allocated while `fn()` runs on meta tensors (what it returns counts: it is alive at the end).
    `memo`: modules run once per input shape; `blends`: a VAE whose tile-blending methods are memoised too."""
    tracker = MemoryTracker(cpu_conv=device == "cpu")
    undo = [memoize_forward(m, tracker) for m in memo]
    if blends is not None:
        names = [n for n in ("blend_h", "blend_v", "blend_t") if hasattr(blends, n)]
        undo += [memoize_inplace(blends, n, tracker, returns=1) for n in names]
    try:
        with torch.inference_mode(), FusedAttention(), tracker:
            out = fn()
            del out
    finally:
        for u in undo:
            u()
    return tracker.peak


def _cast(m: Any, dtype: torch.dtype) -> Any:
    """The module in `dtype` (torch's own `to`: diffusers' override warns about fp32 modules, irrelevant here)."""
    torch.nn.Module.to(m, dtype)
    return m.eval()


def _meta(t: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(t, device="meta", dtype=dtype)


def plan_encode(
    model: ModelRef,
    family: Family,
    device: str,
    dtype: torch.dtype,
    settings: EncodeSettings,
    frames: int,
    size: tuple[int, int] | None = None,
) -> StagePlan:
    """The text encoders, then (image-to-video, `size` = the video's (height, width)) the image encoders, which load
    after the text encoders are freed: the stage's peak is the larger of the two halves'."""
    from render.model.check import meta_module

    comps = []
    for name, length, extra in family.plan_text_inputs(model, settings, frames):
        m = _cast(meta_module(family.component_classes[name], {}, model.component(name)), dtype)
        ids = torch.zeros((1, length), dtype=torch.long, device="meta")
        inputs = ids.numel() * 8 * 2  # ids + mask
        act = _run(lambda m=m, ids=ids, extra=extra: m(input_ids=ids, **extra), device)
        comps.append(_component(name, m, _storage(m, dtype), act + inputs))
    peaks = _peaks(tuple(comps), device)
    images = []
    if size is not None and family.image_encoding(model) is not None:
        for name, run in family.plan_image_inputs(model, *size):
            cls = family.component_classes[name]
            config = family.config(model, name) if cls.startswith("diffusers.") else {}
            m = _cast(meta_module(cls, config, model.component(name)), dtype)
            act = _run(lambda m=m, run=run: run(m), device)
            images.append(_component(name, m, _storage(m, dtype), act))
    if images:
        second = _peaks(tuple(images), device)
        peaks = {mode: max(peaks[mode], second[mode]) for mode in peaks}
    comps += images
    return StagePlan("encode", device, str(dtype).removeprefix("torch."), tuple(comps), peaks)


def plan_render(
    model: ModelRef,
    family: Family,
    variant: DiTVariant,
    device: str,
    dtype: torch.dtype,
    latent: tuple[int, ...],
    text_len: int,
) -> StagePlan:
    from render.model.check import meta_module

    config = family.dit_config(model, variant)
    m = meta_module(family.component_classes["transformer"], config, model.component("transformer"))
    m = _cast(m, dtype)
    fp8 = _fp8_layers(family.fp8_kind(model, variant), m)
    sizes = _storage(m, dtype, fp8)
    gguf = variant.dit_file is not None and variant.dit_file.suffix == ".gguf"
    if gguf:
        sizes = _gguf_sizes(variant.dit_file, family, m, dtype, sizes)
    kwargs = family.plan_dit_inputs(config, latent, text_len, dtype)
    act = _run(lambda: family.plan_dit_forward(m, kwargs), device)
    # the loop's own tensors: latents, x0 and the step's result in fp32, the DiT's input and output
    lat = 1
    for d in latent:
        lat *= d
    act += lat * (3 * 4 + 2 * dtype.itemsize)
    if fp8 or gguf:
        linears = [mod.weight.numel() for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
        act += max(linears, default=0) * dtype.itemsize  # one layer dequantised for its forward
    comp = _component("transformer", m, sizes, act)
    return StagePlan("render", device, str(dtype).removeprefix("torch."), (comp,), _peaks((comp,), device))


def plan_upscale(
    family: Family, up: Upscaler, device: str, dtype: torch.dtype, latent: tuple[int, ...], text_len: int
) -> StagePlan:
    """Super-resolution at the upscaled latent size `latent`: its DiT (the family's inputs, its condition channels
    included) and its upsampler (float32, run once before the loop on the resized latents)."""
    from render.model.check import meta_module

    config = dict(up.config)
    m = _cast(meta_module(family.component_classes["transformer"], config, up.components[0]), dtype)
    kwargs = family.plan_dit_inputs(config, latent, text_len, dtype)
    act = _run(lambda: family.plan_dit_forward(m, kwargs), device)
    lat = 1
    for d in latent:
        lat *= d
    cond = int(config["in_channels"]) - latent[1]  # the condition channels, held twice (with and without the LR part)
    act += lat * (3 * 4 + 2 * dtype.itemsize) + 2 * (lat // latent[1]) * cond * 4
    dit = _component("transformer", m, _storage(m, dtype), act)
    ups = _cast(family.plan_upsampler(up), torch.float32)
    x = _meta(tuple(latent), torch.float32)
    act_u = _run(lambda: ups(x), device) + 2 * lat * 4  # + the resized input and the noise draw
    upsampler = _component("upsampler", ups, _storage(ups, torch.float32), act_u)
    comps = (dit, upsampler)
    return StagePlan("upscale", device, str(dtype).removeprefix("torch."), comps, _peaks(comps, device))


def plan_decode(
    model: ModelRef, family: Family, device: str, dtype: torch.dtype, latent: tuple[int, ...], tiling: bool
) -> StagePlan:
    from render.model.check import meta_module
    from render.stages.decode import frames_from_decoded

    m = meta_module(family.component_classes["vae"], family.config(model, "vae"), model.component("vae"))
    m = _cast(m, dtype)
    if tiling:
        m.enable_tiling()
    z = _meta(latent, dtype)

    def decode() -> Any:
        x = m.decode(z / m.config.scaling_factor, return_dict=False)[0]
        return frames_from_decoded(x.to(device="meta")) if device == "cpu" else x

    act = _run(decode, device, memo=(m.decoder,), blends=m)
    comp = _component("vae", m, _storage(m, dtype), act)
    peaks = dict.fromkeys(CONCRETE_MODES, comp.weights + act)  # the VAE always loads whole
    return StagePlan("decode", device, str(dtype).removeprefix("torch."), (comp,), peaks)


def _fp8_layers(kind: str | None, m: torch.nn.Module) -> tuple[set[str], bool] | None:
    """(names of the layers stored in fp8, biases too?) under the variant's fp8 kind; None: no fp8. Layerwise
    casting follows diffusers: every Linear/Conv3d whose name matches none of the model's skip patterns
    (embedders and everything named "norm", the AdaLN modulation linears included, stay in full precision); a
    family's scaled fp8 file keeps the linears of the blocks in fp8, weights only."""
    import re

    if kind is None:
        return None
    if kind != "layerwise":
        linears = {n for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear)}
        return {n for n in linears if n.startswith(("transformer_blocks.", "single_transformer_blocks."))}, False
    skip = tuple(getattr(m, "_skip_layerwise_casting_patterns", None) or ())
    layers = {n for n, mod in m.named_modules() if isinstance(mod, (torch.nn.Linear, torch.nn.Conv3d))}
    return {n for n in layers if not any(re.search(p, n) for p in skip)}, True


def _gguf_sizes(
    path: Any, family: Family, m: torch.nn.Module, dtype: torch.dtype, sizes: dict[str, int]
) -> dict[str, int]:
    """Per-layer bytes of a GGUF DiT: a quantised weight's bytes in the file (split by rows where one original
    tensor becomes several layers) + its bias in the compute dtype; other layers as counted."""
    from render.model.mapping import split_key
    from render.model.weightfiles import gguf_tensor_bytes

    found = gguf_tensor_bytes(path)
    hidden = found["img_in.proj.weight"][1][0] if "img_in.proj.weight" in found else 0
    out = dict(sizes)
    modules = dict(m.named_modules())
    for name, (nbytes, shape, quantised) in found.items():
        module, param = split_key(name)
        names = family.module_map
        targets = (names.map_module(module, hidden) if names is not None else None) or []
        if not quantised or param != "weight":
            continue
        for t in targets:
            rows = sum((shape[0] if b is None else b) - a for a, b in t.rows)
            layer = modules.get(t.name)
            bias = getattr(layer, "bias", None)
            out[t.name] = nbytes * rows // shape[0] + (bias.numel() * dtype.itemsize if bias is not None else 0)
    return out
