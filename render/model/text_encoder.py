"""`hyv models prepare-text-encoder SRC DST`: the Llama-3-8B language model and tokenizer out of
`xtuner/llava-llama-3-8b-v1_1-transformers`, on the CPU, streaming tensors.

Upstream's script loads the whole LLaVA model onto GPU 0 and saves `model.language_model` (issue #142: users without
a GPU cannot run it). Here the source shards are memory-mapped one at a time and the language model's tensors are
renamed and written into output shards of `max_shard_size`: peak memory stays near one shard. The output is what
hyv (and upstream, through AutoModel) loads as the text encoder: a `LlamaModel` folder with its tokenizer.

Source names: LLaVA checkpoints as saved by transformers < 4.52 (`language_model.model.*`, `language_model.lm_head`,
`vision_tower.*`, `multi_modal_projector.*`), as the hub repository holds them, or by later versions
(`model.language_model.*`, `lm_head`, `model.vision_tower.*`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from render.core.errors import UsageError, WeightsError
from render.core.fsutil import tmp_path_for

_LANGUAGE_PREFIXES = ("language_model.model.", "model.language_model.")


def _language_name(key: str) -> str | None:
    for p in _LANGUAGE_PREFIXES:
        if key.startswith(p):
            return key.removeprefix(p)
    return None  # vision tower, projector, lm_head: not part of the text encoder


def _tensors(src: Path, dtype: Any) -> Iterator[tuple[str, Any]]:
    """The language model's tensors, renamed, one source shard mapped at a time."""
    from safetensors import safe_open

    from render.model.weightfiles import safetensors_header

    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise UsageError(f"{src} holds no .safetensors shards (expected a LLaVA checkpoint folder)")
    for shard in shards:
        safetensors_header(shard)  # truncated downloads fail with one line naming the shard
        with safe_open(str(shard), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                name = _language_name(key)
                if name is not None:
                    t = f.get_tensor(key)
                    yield name, t.to(dtype) if dtype is not None else t


def _text_config(src: Path, vocab: int, dtype_name: str) -> dict[str, Any]:
    from transformers import LlamaConfig

    try:
        cfg = json.loads((src / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise UsageError(f"{src}/config.json is missing or not JSON: not a LLaVA checkpoint folder") from None
    text = cfg.get("text_config")
    if not isinstance(text, dict):
        raise UsageError(f"{src}/config.json has no text_config: not a LLaVA checkpoint folder")
    text = {k: v for k, v in text.items() if k not in ("architectures", "_name_or_path", "model_type")}
    out = LlamaConfig(**{**text, "vocab_size": vocab}).to_dict()
    out.update({"architectures": ["LlamaModel"], "torch_dtype": dtype_name})
    return out


def prepare_text_encoder(
    src: Path, dst: Path, *, dtype_name: str = "float16", max_shard_size: str = "2GB", force: bool = False
) -> Path:
    import torch
    from transformers import AutoTokenizer

    from render.model.shards import write_shards

    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not force:
        raise UsageError(f"{dst} exists and is not empty; choose another directory or pass --force")
    if dtype_name not in ("float16", "bfloat16", "float32"):
        raise UsageError(f"unknown dtype {dtype_name!r}; use float16, bfloat16 or float32")
    dtype = getattr(torch, dtype_name)
    tmp = tmp_path_for(dst)
    try:
        tmp.mkdir(parents=True)
        vocab: list[int] = []

        def watched() -> Iterator[tuple[str, Any]]:
            for name, t in _tensors(src, dtype):
                if name == "embed_tokens.weight":
                    vocab.append(int(t.shape[0]))
                yield name, t

        write_shards(watched(), tmp, "model", max_shard_size)
        if not vocab:
            raise WeightsError(f"{src} holds no language model tensors (language_model.model.*)")
        (tmp / "config.json").write_text(json.dumps(_text_config(src, vocab[0], dtype_name), indent=2))
        AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
        if dst.is_dir():
            shutil.rmtree(dst)
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
