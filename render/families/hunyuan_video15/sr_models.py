"""Where HunyuanVideo 1.5's super-resolution (SR) models live, and loading, converting and writing them.

An SR model is a DiT (diffusers' `HunyuanVideo15Transformer3DModel` with 3C + 2 input channels: the noisy latents,
the image condition and its mask, the low-resolution condition and its mask; and the MeanFlow `timestep_r`
embedder) and an upsampler (render.families.hunyuan_video15.upsampler). Two layouts, looked for in the folder
`--sr-model` names, else in the model's folder:

- Tencent's (`tencent/HunyuanVideo-1.5`), loaded in place:
      transformer/720p_sr_distilled/{config.json, *.safetensors}    Tencent's DiT class, names and config keys
      upsampler/720p_sr_distilled/{config.json, diffusion_pytorch_model.safetensors}
  (and `1080p_sr_distilled`). Its DiT's config is translated and its tensors renamed as they load (keys.py).
- hyv's (what `hyv models convert` writes, and `hyv models init-tiny --preset tiny-sr`):
      sr-720p/sr.json                  {"target": "720p", "lr_target": 640, "hr_target": 960, "steps": 6,
                                        "shift": 2.0, "noise": 0.7, "from": "720p_sr_distilled"}
      sr-720p/transformer/             diffusers' layout of the DiT (config.json, sharded safetensors)
      sr-720p/upsampler/               as Tencent's (its names and config keys are kept: nothing to convert)
  (and `sr-1080p/`). A folder given with --sr-model may also be one `sr-<target>/` folder itself.

What Tencent's pipeline hard-codes is in `VERSIONS` (its `SR_PIPELINE_CONFIGS` and `SizeMap`): 720p takes the
480p buckets (target 640) to 720p (960) in 6 steps, 1080p the 720p buckets (960) to 1080p (1440) in 8; shift 2,
no CFG, re-noising strength 0.7.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import ModelNotFoundError, WeightsError
from render.families.hunyuan_video15 import keys
from render.model.family import Upscaler


@dataclass(frozen=True)
class Version:
    folder: str  # Tencent's folder under transformer/ and upsampler/
    lr_target: int  # the buckets the base video must be on (Tencent's base_resolution: 480p -> 640)
    hr_target: int  # the buckets of the upscaled video (its ideal_resolution: 720p -> 960)
    steps: int


VERSIONS: dict[str, Version] = {
    "720p": Version("720p_sr_distilled", 640, 960, 6),
    "1080p": Version("1080p_sr_distilled", 960, 1440, 8),
}
SIZE_MAP = {"360p": 480, "480p": 640, "720p": 960, "1080p": 1440}  # Tencent's SizeMap: resolution -> bucket target
SHIFT = 2.0
NOISE = 0.7  # the re-noising strength of the upsampled latents, and the timestep (x 1000) below which it is dropped
SR_JSON = "sr.json"
DIT_CLASS = "HunyuanVideo15Transformer3DModel"


def hyv_folder(root: Path, target: str) -> Path:
    return root / f"sr-{target}"


def find(root: Path, target: str) -> Upscaler | None:
    """The SR model for `target` in `root` (either layout; `root` may be an `sr-<target>/` folder), or None."""
    for d in (hyv_folder(root, target), root):
        if (d / SR_JSON).is_file():
            up = _hyv(d)
            if up.target == target:
                return up
    v = VERSIONS[target]
    t, u = root / "transformer" / v.folder, root / "upsampler" / v.folder
    if t.is_dir() or u.is_dir():
        for d in (t, u):
            if not d.is_dir() or not any(d.iterdir()):
                raise ModelNotFoundError(
                    f"{root} has Tencent's {v.folder} super-resolution model but no {d.relative_to(root)}/ (it needs "
                    f"both transformer/{v.folder}/ and upsampler/{v.folder}/)"
                )
        return _original(root, target)
    return None


def found_in(root: Path) -> dict[str, Path]:
    """target -> folder of every SR model in `root` (for `hyv models check`)."""
    out: dict[str, Path] = {}
    if (root / SR_JSON).is_file():  # an sr-<target>/ folder itself
        return {_hyv(root).target: root}
    for target, v in VERSIONS.items():
        if (hyv_folder(root, target) / SR_JSON).is_file():
            out[target] = hyv_folder(root, target)
        elif (root / "transformer" / v.folder).is_dir() or (root / "upsampler" / v.folder).is_dir():
            out[target] = root / "transformer" / v.folder
    return out


def missing_message(model_source: str, where: Path, target: str) -> str:
    v = VERSIONS[target]
    return (
        f"no super-resolution model for {target} in {where}: hyv looks for sr-{target}/ (hyv's layout: `hyv models "
        f"convert`) or transformer/{v.folder}/ + upsampler/{v.folder}/ (Tencent's); pass --sr-model DIR, or fetch "
        f"it: hyv models download DIR --family HunyuanVideo-1.5 --sr {target}"
    )


def _read_json(p: Path) -> dict[str, Any]:
    try:
        found = json.loads(p.read_text())
    except FileNotFoundError:
        raise ModelNotFoundError(f"{p} is missing") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"{p} is not valid JSON ({exc})") from None
    if not isinstance(found, dict):
        raise ModelNotFoundError(f"{p} is not a JSON object")
    return found


def _hyv(d: Path) -> Upscaler:
    sr = _read_json(d / SR_JSON)
    target = sr.get("target")
    if target not in VERSIONS:
        raise ModelNotFoundError(f"{d / SR_JSON}: unknown target {target!r}; use one of {', '.join(VERSIONS)}")
    v = VERSIONS[target]
    config = _read_json(d / "transformer" / "config.json")
    facts = {
        **_decode(target),
        "lr_target": int(sr.get("lr_target", v.lr_target)),
        "hr_target": int(sr.get("hr_target", v.hr_target)),
        "noise": float(sr.get("noise", NOISE)),
        "from": sr.get("from", v.folder),
    }
    steps, shift = int(sr.get("steps", v.steps)), float(sr.get("shift", SHIFT))
    return Upscaler(target, str(d), "diffusers", (d / "transformer", d / "upsampler"), config, steps, shift, facts)


def _original(root: Path, target: str) -> Upscaler:
    from render.model.weightfiles import folder_shapes

    v = VERSIONS[target]
    t, u = root / "transformer" / v.folder, root / "upsampler" / v.folder
    tcfg = _read_json(t / "config.json")
    hr = SIZE_MAP.get(str(tcfg.get("ideal_resolution")), v.hr_target)
    config = diffusers_config(tcfg, folder_shapes(t), hr, t)
    facts = {**_decode(target), "lr_target": v.lr_target, "hr_target": hr, "noise": NOISE, "from": v.folder}
    return Upscaler(target, str(root), "original", (t, u), config, v.steps, SHIFT, facts)


def _decode(target: str) -> dict[str, Any]:
    """1080p cannot be decoded without tiling (the VAE's activations: ~446 GB for 121 frames by the memory plan)."""
    return {"decode_tiling": "required"} if target == "1080p" else {}


def diffusers_config(
    tcfg: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], target_size: int, where: Path
) -> dict[str, Any]:
    """diffusers' config of a Tencent DiT: widths and depths from its tensors (the input channels too: 98 for the SR
    models, whatever the config's `concat_condition` spelling), the rest from its config."""
    try:
        hidden, heads = int(tcfg["hidden_size"]), int(tcfg["heads_num"])
        patch = tcfg.get("patch_size", [1, 1, 1])
        patch = patch if isinstance(patch, list) else [1, patch, patch]
        return {
            "_class_name": DIT_CLASS,
            "in_channels": int(shapes["img_in.proj.weight"][1]),
            "out_channels": int(shapes["final_layer.linear.weight"][0]) // (int(patch[0]) * int(patch[1]) ** 2),
            "num_attention_heads": heads,
            "attention_head_dim": hidden // heads,
            "num_layers": keys.count(shapes, r"double_blocks\.(\d+)\."),
            "num_refiner_layers": keys.count(shapes, r"txt_in\.individual_token_refiner\.blocks\.(\d+)\."),
            "mlp_ratio": float(tcfg.get("mlp_width_ratio", 4.0)),
            "patch_size": int(patch[1]),
            "patch_size_t": int(patch[0]),
            "qk_norm": "rms_norm",
            "text_embed_dim": int(tcfg["text_states_dim"]),
            "text_embed_2_dim": int(shapes["byt5_in.layernorm.weight"][0]),
            "image_embed_dim": int(tcfg["vision_states_dim"]),
            "rope_theta": float(tcfg.get("rope_theta", 256)),
            "rope_axes_dim": [int(x) for x in tcfg["rope_dim_list"]],
            "target_size": target_size,
            "task_type": "t2v",
            "use_meanflow": "time_r_in.mlp.0.weight" in shapes,
        }
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise WeightsError(f"{where}: not Tencent's HunyuanVideo 1.5 DiT (no {exc} in its config or tensors)") from None


# ---------------------------------------------------------------------------------------------- loading


def load_dit(up: Upscaler, dtype: Any) -> Any:
    """The SR DiT on the CPU in `dtype`: diffusers' own loading for hyv's layout; Tencent's tensors renamed as they
    are read (memory-mapped, each cast on its own: no second copy of the model)."""
    import torch
    from diffusers import HunyuanVideo15Transformer3DModel

    if up.layout == "diffusers":
        return HunyuanVideo15Transformer3DModel.from_pretrained(up.components[0], dtype=dtype).eval()
    with torch.device("meta"):
        module = HunyuanVideo15Transformer3DModel.from_config(dict(up.config))
    sd = {k: v.to(dtype) for k, v in original_state_dict(up.components[0]).items()}
    try:
        module.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as exc:
        raise WeightsError(f"{up.components[0]}: {' '.join(str(exc).split())[:200]}") from None
    return module.eval()


def original_state_dict(directory: Path) -> dict[str, Any]:
    """A Tencent DiT folder's tensors under diffusers' names (memory-mapped views where no split is needed)."""
    from safetensors import safe_open

    from render.model.weightfiles import load_pt, unwrap_state_dict, weight_files

    files = weight_files(directory)
    if not files:
        raise ModelNotFoundError(f"{directory} holds no weight files")
    tensors: dict[str, Any] = {}
    for f in files:
        if f.name.endswith(".safetensors"):
            with safe_open(str(f), framework="pt") as st:
                for k in st.keys():  # noqa: SIM118 - safe_open is no dict
                    tensors[k] = st.get_tensor(k)
        else:
            tensors.update(unwrap_state_dict(load_pt(f), f))
    rules, unmapped = keys.rules(tensors)
    if unmapped:
        raise WeightsError(f"{directory}: {len(unmapped)} tensor(s) of no known HunyuanVideo 1.5 module, e.g. "
                           f"{', '.join(unmapped[:3])}")  # fmt: skip
    return {r[0]: keys.apply(r, tensors.__getitem__) for r in rules}


def diffusers_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    """A Tencent DiT folder's tensor shapes under diffusers' names (headers only: `hyv models check`)."""
    from render.model.weightfiles import folder_shapes

    shapes = folder_shapes(directory)
    rules, _ = keys.rules(shapes)
    return {r[0]: keys.shape(r, shapes) for r in rules}


def load_upsampler(up: Upscaler) -> Any:
    from render.families.hunyuan_video15 import upsampler

    return upsampler.load(up.components[1])


# ---------------------------------------------------------------------------------------------- conversion


def convert(src: Path, out: Path, max_shard_size: str) -> list[str]:
    """Every Tencent-layout SR model in `src` written to `out/sr-<target>/` (hyv's layout): the DiT renamed and
    sharded, the upsampler copied (its layout is already the one hyv reads). Returns the targets written."""
    import shutil

    from render.model.convert import save_component

    done = []
    for target in VERSIONS:
        up = find(src, target)
        if up is None or up.layout != "original":
            continue
        d = hyv_folder(out, target)
        d.mkdir(parents=True)
        config = {k: v for k, v in up.config.items() if not k.startswith("_")}
        save_component(original_state_dict(up.components[0]), d / "transformer", config, DIT_CLASS, max_shard_size)
        shutil.copytree(up.components[1], d / "upsampler")
        write_sr_json(d, target, up.facts, up.steps, up.shift)
        done.append(target)
    return done


def write_sr_json(d: Path, target: str, facts: Mapping[str, Any], steps: int, shift: float) -> None:
    sr = {
        "target": target,
        "lr_target": facts["lr_target"],
        "hr_target": facts["hr_target"],
        "steps": steps,
        "shift": shift,
        "noise": facts.get("noise", NOISE),
        "from": facts.get("from", VERSIONS[target].folder),
    }
    (d / SR_JSON).write_text(json.dumps(sr, indent=2))


def fetch_list(targets: tuple[str, ...]) -> list[Any]:
    """Tencent's SR folders of `tencent/HunyuanVideo-1.5`, fetched into the model folder in Tencent's layout (hyv
    loads them in place; `hyv models convert` makes hyv's layout of them)."""
    from render.model.download import Fetch

    patterns = tuple(f"{kind}/{VERSIONS[t].folder}/*" for t in targets for kind in ("transformer", "upsampler"))
    return [Fetch("tencent/HunyuanVideo-1.5", "", patterns)]


# ---------------------------------------------------------------------------------------------- tiny models


def write_tiny(directory: Path, base: Mapping[str, Any], seed: int) -> None:
    """Tiny random SR models for a tiny base model (its widths, text dims and VAE), in hyv's layout: `sr-720p/`
    takes the base model's buckets (target `base["target_size"]`) to 1.5x, `sr-1080p/` those to 2.25x (as 640 ->
    960 -> 1440)."""
    import torch
    from diffusers import HunyuanVideo15Transformer3DModel

    from render.families.hunyuan_video15 import upsampler

    latent, lr = int(base["latent"]), int(base["target_size"])
    for n, (target, v) in enumerate(VERSIONS.items()):
        lr_target = lr if target == "720p" else lr * 3 // 2
        d = hyv_folder(directory, target)
        torch.manual_seed(seed + 10 + n)
        dit: Any = HunyuanVideo15Transformer3DModel(
            in_channels=3 * latent + 2, out_channels=latent, num_attention_heads=base["heads"],
            attention_head_dim=base["head_dim"], num_layers=base["layers"], num_refiner_layers=1, mlp_ratio=2.0,
            patch_size=1, patch_size_t=1, text_embed_dim=base["text_dim"], text_embed_2_dim=base["text_2_dim"],
            image_embed_dim=base["image_dim"], rope_axes_dim=base["rope_axes"], target_size=lr_target * 3 // 2,
            task_type="t2v", use_meanflow=True,
        )  # fmt: skip
        _randomize(dit, seed + 20 + n)  # diffusers zero-initialises some layers: SR would then ignore its condition
        dit.eval().save_pretrained(str(d / "transformer"), safe_serialization=True)
        torch.manual_seed(seed + 30 + n)
        if target == "720p":
            ups: Any = upsampler.Upsampler720p(latent, latent, hidden_channels=2 * latent, num_blocks=1)
        else:
            ups = upsampler.Upsampler1080p(latent, latent, block_out_channels=(2 * latent, latent), num_res_blocks=1)
        upsampler.save(ups.eval(), d / "upsampler")
        facts = {"lr_target": lr_target, "hr_target": lr_target * 3 // 2, "noise": NOISE, "from": v.folder}
        write_sr_json(d, target, facts, v.steps, SHIFT)


def _randomize(module: Any, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if p.ndim == 1:
                base = 1.0 if name.endswith("weight") and "norm" in name else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / max(1, p[0].numel()) ** 0.5)
