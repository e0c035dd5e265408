"""HunyuanVideo 1.5's text encoders in either layout.

- diffusers: text_encoder/ (Qwen2_5_VLTextModel) + tokenizer/, text_encoder_2/ (T5EncoderModel: ByT5 with the Glyph
  tokens and weights already merged) + tokenizer_2/.
- original: text_encoder/llm (all of Qwen2.5-VL-7B-Instruct: its language model is taken), text_encoder/byt5-small
  (google/byt5-small) with Glyph-SDXL-v2's colour and font tokens added and its `byt5_model.pt` loaded, as
  Tencent's `load_byt5` and diffusers' converter do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from render.core.errors import ModelNotFoundError, WeightsError
from render.families.hunyuan_video15.layout import GLYPH_FILES
from render.model.ref import DIFFUSERS, ModelRef

_TOWER = "module.text_tower.encoder."


def load_qwen(model: ModelRef, dtype: Any) -> tuple[Any, Any]:
    """(tokenizer, language model)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model.component("tokenizer"))
    tok.padding_side = "right"  # the crop keeps a prefix of valid tokens
    if model.layout == DIFFUSERS:
        from transformers import Qwen2_5_VLTextModel

        return tok, Qwen2_5_VLTextModel.from_pretrained(model.component("text_encoder"), dtype=dtype).eval()
    from transformers import AutoModel

    vl = AutoModel.from_pretrained(model.component("text_encoder"), dtype=dtype)
    lm = getattr(vl, "language_model", vl)  # Qwen2.5-VL -> its language model
    return tok, lm.eval()


def load_byt5(model: ModelRef, dtype: Any) -> tuple[Any, Any]:
    """(tokenizer, glyph encoder)."""
    from transformers import AutoTokenizer, T5EncoderModel

    tok = AutoTokenizer.from_pretrained(model.component("tokenizer_2"))
    enc = T5EncoderModel.from_pretrained(model.component("text_encoder_2"), dtype=dtype)
    if model.layout != DIFFUSERS:
        add_glyph(model.component("glyph"), tok, enc)
    return tok, enc.eval()


def glyph_problem(glyph: Path) -> str | None:
    """What of Glyph-SDXL-v2 is missing, or None."""
    missing = [f for f in GLYPH_FILES if not (glyph / f).is_file()]
    return f"{glyph} lacks {', '.join(missing)} (download AI-ModelScope/Glyph-SDXL-v2 there)" if missing else None


def glyph_tokens(glyph: Path) -> list[str]:
    """The colour tokens, then the font tokens in the file's order (the order decides their ids)."""
    try:
        colours = json.loads((glyph / GLYPH_FILES[0]).read_text())
        fonts = json.loads((glyph / GLYPH_FILES[1]).read_text())
    except (OSError, ValueError):
        raise ModelNotFoundError(f"{glyph}: its colour and font tables are missing or not JSON") from None
    return [f"<color-{i}>" for i in range(len(colours))] + [f"<{code[:2]}-font-{idx}>" for code, idx in fonts.items()]


def add_glyph(glyph: Path, tokenizer: Any, encoder: Any) -> None:
    """ByT5 + Glyph-SDXL-v2: the tokens added, the embeddings resized, `byt5_model.pt` loaded (a plain encoder state
    dict, or a `state_dict` wrapper whose `module.text_tower.encoder.*` tensors are the encoder's)."""
    from render.model.weightfiles import load_pt

    problem = glyph_problem(glyph)
    if problem is not None:
        raise ModelNotFoundError(problem)
    tokenizer.add_tokens(glyph_tokens(glyph), special_tokens=True)
    encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    found = load_pt(glyph / GLYPH_FILES[2])
    if isinstance(found, dict) and "state_dict" in found:
        found = {k.removeprefix(_TOWER): v for k, v in found["state_dict"].items() if k.startswith(_TOWER)}
    if not isinstance(found, dict) or not found:
        raise WeightsError(f"{glyph / GLYPH_FILES[2]} holds no ByT5 encoder tensors")
    sd = {f"encoder.{k}": v.to(encoder.dtype) for k, v in found.items()}
    missing, unexpected = encoder.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k != "shared.weight"]  # tied to encoder.embed_tokens
    if missing or unexpected:
        raise WeightsError(
            f"{glyph / GLYPH_FILES[2]} does not fit byt5-small: {len(missing)} missing, {len(unexpected)} unexpected "
            f"tensor(s), e.g. {', '.join((missing + unexpected)[:3])}"
        )
