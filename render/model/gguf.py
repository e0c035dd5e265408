"""GGUF DiT files (city96's HunyuanVideo GGUFs, Q4_K_M ... Q8_0: original tensor names, 1-D tensors and embedders in
F32) through diffusers' GGUF quantisation: the weights stay quantised and each layer dequantises for its forward.

diffusers' `from_single_file` would convert the names itself but with its width fixed at 3072; hyv converts them
(widths from the tensors) and hands diffusers the converted state dict."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from render.core.errors import WeightsError


def load_gguf_state_dict(path: Path) -> dict[str, Any]:
    """The file's tensors under diffusers' names: quantised ones as diffusers' GGUFParameter (quant type kept
    through the row splits), F32/F16 ones as plain tensors."""
    try:
        from diffusers.models.model_loading_utils import load_gguf_checkpoint
    except ImportError:
        raise WeightsError("loading GGUF files needs the `gguf` package (pip install gguf)") from None
    from render.model.original import convert_dit_state_dict, looks_original
    from render.model.weightfiles import gguf_shapes

    gguf_shapes(path)  # a truncated file fails here with one line
    try:
        sd = load_gguf_checkpoint(str(path))
    except ValueError as exc:  # an unsupported quantisation type
        raise WeightsError(f"{path}: {' '.join(str(exc).split())[:200]}") from None
    if looks_original(sd):
        hidden = _logical_shape(sd["img_in.proj.weight"])[0]
        sd = convert_dit_state_dict(sd, hidden, str(path))
    return sd


def _logical_shape(t: Any) -> tuple[int, ...]:
    return tuple(getattr(t, "quant_shape", None) or t.shape)


def load_gguf_dit(path: Path, config: dict[str, Any], compute_dtype: Any) -> Any:
    from diffusers import GGUFQuantizationConfig, HunyuanVideoTransformer3DModel

    sd = load_gguf_state_dict(path)
    with tempfile.TemporaryDirectory(prefix="hyv-gguf-config-") as d:
        # from_single_file takes the config as a folder; the converted state dict is used as it is.
        (Path(d) / "config.json").write_text(
            json.dumps({"_class_name": "HunyuanVideoTransformer3DModel", **config}, default=list)
        )
        model = HunyuanVideoTransformer3DModel.from_single_file(
            sd,
            config=d,
            quantization_config=GGUFQuantizationConfig(compute_dtype=compute_dtype),
            dtype=compute_dtype,
        )
    return model.eval()


def quant_summary(path: Path) -> dict[str, int]:
    """How many tensors of each GGUF type a file holds (for `hyv models check`)."""
    from gguf import GGUFReader

    out: dict[str, int] = {}
    for t in GGUFReader(path).tensors:
        out[t.tensor_type.name] = out.get(t.tensor_type.name, 0) + 1
    return out
