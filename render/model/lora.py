"""LoRAs for the DiT in the formats users have, applied through diffusers' LoRA loader (peft).

- diffusers: `transformer.<diffusers module>.lora_A.weight` / `.lora_B.weight`.
- original (Tencent / ComfyUI / musubi-tuner "other"): `diffusion_model.<original module>.lora_A.weight` / `lora_B`
  (also with a `transformer.` prefix or none).
- musubi-tuner / kohya: `lora_unet_<original module, dots as underscores>.lora_down.weight` / `.lora_up.weight` /
  `.alpha` (the update is scaled by alpha / rank).

Original module names are converted with the family's own mapping (`Family.module_map`, render.model.mapping;
widths from the model, not a fixed 3072): a fused qkv or linear1 LoRA keeps its lora_A for each part and splits
lora_B by rows. A family without one takes diffusers-named LoRAs only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from render.core.errors import WeightsError
from render.model.family import Family
from render.model.mapping import ModuleMap, take_rows
from render.model.variant import LoraSpec

_PAIR = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A|lora_B|lora_down|lora_up)\.weight$")
_ALPHA = re.compile(r"^(?P<module>.+)\.alpha$")
_PREFIXES = ("transformer.", "diffusion_model.", "model.diffusion_model.", "base_model.model.")


def read_lora(path: Path) -> dict[str, Any]:
    """A LoRA file's tensors (.safetensors, or .pt/.bin loaded with weights_only=True)."""
    from render.model.weightfiles import load_pt, safetensors_header, unwrap_state_dict

    if path.name.endswith(".safetensors"):
        from safetensors.torch import load_file

        safetensors_header(path)  # truncation: one line naming the file
        return dict(load_file(str(path)))
    return unwrap_state_dict(load_pt(path), path)


def to_diffusers(
    sd: Mapping[str, Any], config: Mapping[str, Any], source: str, names: ModuleMap | None
) -> dict[str, Any]:
    """Any supported LoRA format -> `transformer.<diffusers module>.lora_{A,B}.weight`, alphas folded into B."""

    pairs: dict[str, dict[str, Any]] = {}
    alphas: dict[str, float] = {}
    odd: list[str] = []
    for key, t in sd.items():
        if (m := _PAIR.match(key)) is not None:
            part = {"lora_down": "lora_A", "lora_up": "lora_B"}.get(m["part"], m["part"])
            pairs.setdefault(m["module"], {})[part] = t
        elif (m := _ALPHA.match(key)) is not None:
            alphas[m["module"]] = float(t)
        else:
            odd.append(key)
    if odd or not pairs:
        raise WeightsError(
            f"{source} is not a LoRA in a format hyv reads (diffusers, original, musubi-tuner/kohya); "
            f"unexpected keys such as {', '.join((odd or list(sd))[:3])}"
        )
    musubi = {n.replace(".", "_"): n for n in names.linear_modules(config)} if names is not None else {}
    hidden = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    out: dict[str, Any] = {}
    for raw, ab in pairs.items():
        if set(ab) != {"lora_A", "lora_B"}:
            raise WeightsError(f"{source}: {raw} has {', '.join(sorted(ab))} but not both lora_A and lora_B")
        a, b = ab["lora_A"], ab["lora_B"]  # [r, in], [out, r]
        if raw in alphas:
            b = b * (alphas[raw] / a.shape[0])
        module = raw
        for p in _PREFIXES:
            module = module.removeprefix(p)
        if module.startswith("lora_unet_"):
            module = musubi.get(module.removeprefix("lora_unet_"), module)
        targets = names.map_module(module, hidden) if names is not None else None
        if targets is None:  # already a diffusers name
            out[f"transformer.{module}.lora_A.weight"] = a
            out[f"transformer.{module}.lora_B.weight"] = b
            continue
        for target in targets:
            out[f"transformer.{target.name}.lora_A.weight"] = a
            out[f"transformer.{target.name}.lora_B.weight"] = take_rows(b, target.rows).contiguous()
    return out


def check_fits(sd: Mapping[str, Any], model: Any, source: str) -> None:
    """Every LoRA layer names a linear layer of the model with matching in/out features; otherwise one line
    naming a few of the offending keys."""
    modules = dict(model.named_modules())
    bad: list[str] = []
    count = 0
    for key, t in sd.items():
        if not key.endswith(".lora_A.weight"):
            continue
        count += 1
        name = key.removeprefix("transformer.").removesuffix(".lora_A.weight")
        layer = modules.get(name)
        b = sd[key.replace(".lora_A.", ".lora_B.")]
        if layer is None or not hasattr(layer, "in_features"):
            bad.append(f"{name} (no such layer)")
        elif (t.shape[1], b.shape[0]) != (layer.in_features, layer.out_features):
            bad.append(
                f"{name} (LoRA {t.shape[1]}->{b.shape[0]}, model {layer.in_features}->{layer.out_features})"
            )
    if bad:
        raise WeightsError(
            f"LoRA {source} does not fit this DiT: {len(bad)} of {count} layers do not match, e.g. "
            f"{'; '.join(bad[:3])}"
        )


def apply_loras(model: Any, specs: tuple[LoraSpec, ...], family: Family) -> None:
    """Load each LoRA as a peft adapter (diffusers' `load_lora_adapter`) and weight them by their scales."""
    if not specs:
        return
    try:
        import peft  # noqa: F401
    except ImportError:
        raise WeightsError("LoRAs need the `peft` package (pip install peft)") from None
    config = dict(model.config)
    names = []
    for i, spec in enumerate(specs):
        sd = to_diffusers(read_lora(spec.path), config, str(spec.path), family.module_map)
        check_fits(sd, model, str(spec.path))
        name = f"lora{i}"
        sd = {k: v.to(model.dtype) for k, v in sd.items()}
        model.load_lora_adapter(sd, adapter_name=name, prefix="transformer")
        _restore_fp8_bases(model, sd, name)
        names.append(name)
    model.set_adapters(names, weights=[s.scale for s in specs])


def _restore_fp8_bases(model: Any, sd: Mapping[str, Any], adapter: str) -> None:
    """peft gives a LoRA layer its base layer's dtype; on Tencent's fp8 linears that would round the LoRA to fp8.
    Put the LoRA's own values back, in the compute dtype."""
    import torch

    for key, t in sd.items():
        module, _, part = key.removeprefix("transformer.").removesuffix(".weight").rpartition(".")
        layer = model.get_submodule(f"{module}.{part}.{adapter}")
        if layer.weight.dtype != t.dtype:
            layer.weight = torch.nn.Parameter(t.clone(), requires_grad=False)
