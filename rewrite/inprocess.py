"""The in-process backend: `vllm.LLM` loaded once, the whole batch in one `chat`/`generate` call.

vLLM's continuous batching schedules all prompts together, which is what makes this fast. vLLM is an
optional extra (`pip install '.[rewrite]'`); it is imported here only. vLLM spawns its engine process:
a script that calls this backend needs an `if __name__ == "__main__":` guard (the `hyv` entry point has one).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rewrite.errors import BackendError, ItemFailure, VllmMissingError
from rewrite.server import Answer
from rewrite.settings import InProcessBackend, SamplingSettings

INSTALL_HINT = (
    "--rewrite-model runs vLLM in this process and vllm is not installed here: pip install '.[rewrite]' "
    "(on a CPU machine: scripts/vllm_env.sh DIR builds a vLLM venv), or serve the model and use --endpoint"
)


def model_identity(model_dir: Path) -> dict[str, Any]:
    """Which weights: the directory, its config, and the names, sizes and mtimes of its files."""
    root = Path(model_dir).resolve()
    h = hashlib.sha256()
    for p in sorted(root.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"backend": "vllm", "path": str(root), "files_sha256": h.hexdigest()}


def _import_vllm() -> Any:
    if importlib.util.find_spec("vllm") is None:
        raise VllmMissingError(INSTALL_HINT)
    # vLLM logs to stdout by default; stdout belongs to the command's output (`--json` prints one object).
    # Set before the import: vLLM configures logging then, and its engine processes inherit the variable.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        import vllm
    except Exception as exc:  # noqa: BLE001 - an installed but broken vLLM is reported in one line
        raise BackendError(f"vllm is installed but cannot be imported: {type(exc).__name__}: {exc}") from None
    return vllm


class InProcessEngine:
    def __init__(self, backend: InProcessBackend) -> None:
        self.backend = backend
        self.model_name = str(Path(backend.model_dir))
        self.identity = model_identity(backend.model_dir)
        if importlib.util.find_spec("vllm") is None:  # fail before any work when vLLM is missing
            raise VllmMissingError(INSTALL_HINT)
        self._vllm: Any = None  # imported (~5 s) only when some prompt is not cached
        self._llm: Any = None

    def check(self) -> None:
        """Nothing to ask before the batch; the model is loaded only when some prompt is not cached."""

    def _load(self) -> Any:
        if self._llm is None:
            self._vllm = _import_vllm()
            b = self.backend
            util = b.gpu_memory_utilization
            if util is None:
                import torch

                util = 0.9 if torch.cuda.is_available() else 0.3
            kwargs: dict[str, Any] = {
                "model": str(b.model_dir),
                "dtype": b.dtype,
                "gpu_memory_utilization": util,
                "tensor_parallel_size": b.tensor_parallel_size,
                "enforce_eager": b.enforce_eager,
            }
            if b.max_model_len is not None:
                kwargs["max_model_len"] = b.max_model_len
            try:
                self._llm = self._vllm.LLM(**kwargs)
            except Exception as exc:  # noqa: BLE001 - vLLM raises many kinds; the user needs one line
                msg = f"vLLM could not load {b.model_dir}: {type(exc).__name__}: {exc}"
                raise BackendError(msg) from None
        return self._llm

    def run(
        self,
        texts: Sequence[str],
        sampling: SamplingSettings,
        chat: bool,
        on_done: Callable[[int, Answer | ItemFailure, float], None],
    ) -> None:
        if not texts:
            return
        llm = self._load()  # the seed goes with each request
        params = self._vllm.SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            repetition_penalty=sampling.repetition_penalty,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
        )
        t0 = time.perf_counter()
        try:
            if chat:
                outs = llm.chat([[{"role": "user", "content": t}] for t in texts], params, use_tqdm=False)
            else:
                outs = llm.generate(list(texts), params, use_tqdm=False)
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"vLLM generation failed: {type(exc).__name__}: {exc}") from None
        # One call for the batch: each item is charged an equal share of its time.
        share = (time.perf_counter() - t0) / len(texts)
        for i, out in enumerate(outs):
            if not out.outputs:
                on_done(i, ItemFailure("vLLM returned no completion"), share)
            else:
                c = out.outputs[0]
                on_done(i, Answer(text=c.text, finish_reason=c.finish_reason), share)
