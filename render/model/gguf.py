"""GGUF DiT files (e.g. city96's HunyuanVideo GGUFs, Q4_K_M ... Q8_0) through diffusers' GGUF quantisation: the
weights stay quantised and each layer dequantises for its forward. The family converts the tensor names (its own
original names, widths from the tensors) and hands the state dict to `quantised_model`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from render.core.errors import WeightsError


def read_gguf(path: Path) -> dict[str, Any]:
    """The file's tensors as they are named in it: quantised ones as diffusers' GGUFParameter (quant type kept
    through row splits), F32/F16 ones as plain tensors."""
    try:
        from diffusers.models.model_loading_utils import load_gguf_checkpoint
    except ImportError:
        raise WeightsError("loading GGUF files needs the `gguf` package (pip install gguf)") from None
    from render.model.weightfiles import gguf_shapes

    gguf_shapes(path)  # a truncated file fails here with one line
    try:
        return dict(load_gguf_checkpoint(str(path)))
    except ValueError as exc:  # an unsupported quantisation type
        raise WeightsError(f"{path}: {' '.join(str(exc).split())[:200]}") from None


def logical_shape(t: Any) -> tuple[int, ...]:
    """A GGUF tensor's shape before quantisation."""
    return tuple(getattr(t, "quant_shape", None) or t.shape)


def quantised_model(cls: Any, sd: dict[str, Any], config: dict[str, Any], compute_dtype: Any) -> Any:
    """`cls` (a diffusers model class) built from `config` with the GGUF state dict `sd` (diffusers' names)."""
    from diffusers import GGUFQuantizationConfig

    with tempfile.TemporaryDirectory(prefix="hyv-gguf-config-") as d:
        # from_single_file takes the config as a folder; the converted state dict is used as it is.
        (Path(d) / "config.json").write_text(json.dumps({"_class_name": cls.__name__, **config}, default=list))
        model = cls.from_single_file(
            sd,
            config=d,
            quantization_config=GGUFQuantizationConfig(compute_dtype=compute_dtype),
            dtype=compute_dtype,
        )
    return model.eval()
