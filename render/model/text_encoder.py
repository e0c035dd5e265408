"""`hyv models prepare-text-encoder SRC DST`: the language model of a vision-language checkpoint (HunyuanVideo:
LLaVA-Llama-3-8B; HunyuanVideo 1.5: Qwen2.5-VL-7B) and its tokenizer, extracted on the CPU, streaming tensors.

Upstream's scripts load the whole model onto GPU 0 and save its language model (HunyuanVideo issue #142: users
without a GPU cannot run it). Here the source shards are memory-mapped one at a time and the language model's
tensors are renamed and written into output shards of `max_shard_size`: peak memory stays near one shard. The family
says which tensor names belong to the language model and how its config is built (`LanguageModel`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import UsageError, WeightsError
from render.core.fsutil import tmp_path_for


@dataclass(frozen=True)
class LanguageModel:
    """Where a family's text encoder sits in a vision-language checkpoint."""

    what: str  # the checkpoint's kind, for messages ("a LLaVA checkpoint folder")
    prefixes: tuple[str, ...]  # source tensor-name prefixes of the language model (stripped; the first that fits)
    config: Callable[[dict[str, Any], int, str], dict[str, Any]]  # (source config.json, vocab, dtype) -> config
    exclude: tuple[str, ...] = ()  # prefixes that are not the language model although a prefix above fits


def _tensors(src: Path, lm: LanguageModel, dtype: Any) -> Iterator[tuple[str, Any]]:
    """The language model's tensors, renamed, one source shard mapped at a time."""
    from safetensors import safe_open

    from render.model.weightfiles import safetensors_header

    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise UsageError(f"{src} holds no .safetensors shards (expected {lm.what})")
    for shard in shards:
        safetensors_header(shard)  # truncated downloads fail with one line naming the shard
        with safe_open(str(shard), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                fits = not key.startswith(lm.exclude) if lm.exclude else True
                name = next((key.removeprefix(p) for p in lm.prefixes if key.startswith(p)), None) if fits else None
                if name is not None:  # not the vision tower, projector or lm_head
                    t = f.get_tensor(key)
                    yield name, t.to(dtype) if dtype is not None else t


def source_config(src: Path, what: str) -> dict[str, Any]:
    try:
        cfg = json.loads((src / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise UsageError(f"{src}/config.json is missing or not JSON: not {what}") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"{src}/config.json is not a JSON object: not {what}")
    return cfg


def extract_language_model(
    src: Path,
    dst: Path,
    lm: LanguageModel,
    *,
    dtype_name: str = "float16",
    max_shard_size: str = "2GB",
    force: bool = False,
) -> Path:
    import torch
    from transformers import AutoTokenizer

    from render.model.shards import write_shards

    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not force:
        raise UsageError(f"{dst} exists and is not empty; choose another directory or pass --force")
    if dtype_name not in ("float16", "bfloat16", "float32"):
        raise UsageError(f"unknown dtype {dtype_name!r}; use float16, bfloat16 or float32")
    cfg = source_config(src, lm.what)
    dtype = getattr(torch, dtype_name)
    tmp = tmp_path_for(dst)
    try:
        tmp.mkdir(parents=True)
        vocab: list[int] = []

        def watched() -> Iterator[tuple[str, Any]]:
            for name, t in _tensors(src, lm, dtype):
                if name == "embed_tokens.weight":
                    vocab.append(int(t.shape[0]))
                yield name, t

        write_shards(watched(), tmp, "model", max_shard_size)
        if not vocab:
            raise WeightsError(f"{src} holds no language model tensors ({', '.join(p + '*' for p in lm.prefixes)})")
        (tmp / "config.json").write_text(json.dumps(lm.config(cfg, vocab[0], dtype_name), indent=2))
        AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
        if dst.is_dir():
            shutil.rmtree(dst)
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
