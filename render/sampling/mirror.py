"""How the ranks of a context-parallel job stay in step: rank 0 leads, the others mirror its DiT forwards.

Rank 0 runs the engine call as a single process would (checks, locks, skips, checkpoints, every artifact, the
progress display), so nothing but rank 0 ever reads a lock or writes a file, and the ranks cannot take different
paths through a batch. A hook on its DiT (`BroadcastForward`) sends each forward's inputs to the other ranks,
which run the same forward (`follow`): the forward's collectives need every rank. When the call ends, rank 0
sends its result (a `Report`) or its error, so every rank returns the same report or raises the same error, and
exits with the same code. Messages go over a gloo group with a long timeout: the other ranks wait while rank 0
encodes and decodes.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch
import torch.distributed as dist
from diffusers.hooks import ModelHook

from render.core.errors import RuntimeFailure, SettingsError
from render.model.family import Family

if TYPE_CHECKING:
    from render.sampling.parallel import Group, ParallelSpec

T = TypeVar("T")


class Mirrored(Protocol):
    """What leading and following need of an engine: its group, its DiT, and the end of the render stage."""

    parallel: Group | None

    def transformer(self, placement: Any) -> Any: ...

    def stage_done(self, stage: str) -> None: ...


def send(group: Group, message: tuple[Any, ...]) -> None:
    dist.broadcast_object_list([message], src=0, group=group.control)


def receive(group: Group) -> tuple[Any, ...]:
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0, group=group.control)
    message: tuple[Any, ...] = box[0]
    return message


def lead(engine: Mirrored, call: Callable[[], T]) -> T:
    """Rank 0: run the engine call, then send its result or its error to the other ranks."""
    group = engine.parallel
    assert group is not None
    try:
        result = call()
    except BaseException as exc:
        if group.broken is None:  # else the others are stuck in a forward's collectives: torchrun ends them
            send(group, ("error", _portable(exc)))
        raise
    if group.broken is None:
        send(group, ("done", result))
    return result


def follow(engine: Mirrored) -> Any:
    """Ranks > 0: run every DiT forward rank 0 sends, until it sends the result of the call (returned) or its
    error (raised)."""
    group = engine.parallel
    assert group is not None
    try:
        while True:
            kind, *rest = receive(group)
            if kind == "done":
                return rest[0]
            if kind == "error":
                raise rest[0]
            placement, args, kwargs = rest
            try:
                dit = engine.transformer(placement)
                with torch.inference_mode():
                    dit.module(*_to(args, dit.device), **_to(kwargs, dit.device))
            except BaseException as exc:  # rank 0 reports its own errors; this one only this rank knows
                print(f"hyv (rank {group.rank}): error: {type(exc).__name__}: {exc}", file=sys.__stderr__)
                raise
    finally:
        engine.stage_done("render")


class BroadcastForward(ModelHook):  # type: ignore[misc]
    """On rank 0: send each forward's inputs (on the CPU) to the other ranks, then run it. An error inside a
    forward leaves the others inside its collectives: the group is marked broken and no forward runs again."""

    def __init__(self, group: Group, placement: Any) -> None:
        super().__init__()
        self.group = group
        self.placement = placement

    def new_forward(self, module: Any, *args: Any, **kwargs: Any) -> Any:
        if self.group.broken is not None:
            raise RuntimeFailure(
                f"context parallel stopped after an error inside a forward: {self.group.broken}"
            )
        send(self.group, ("forward", self.placement, _to(args, "cpu"), _to(kwargs, "cpu")))
        try:
            forward: Any = self.fn_ref.original_forward  # the DiT's own forward (diffusers' hook registry)
            return forward(*args, **kwargs)
        except BaseException as exc:
            self.group.broken = f"{type(exc).__name__}: {exc}"
            raise


class TrimTextPadding(ModelHook):  # type: ignore[misc]
    """Drop the padded text tokens before the DiT's forward (batch 1): with no padding, the key mask the forward
    builds from local lengths is right on every rank (`render.sampling.parallel`). `streams`: the forward's
    (tokens, mask) keyword pairs (a family's `text_streams`)."""

    def __init__(self, spec: ParallelSpec, streams: tuple[tuple[str, str], ...]) -> None:
        super().__init__()
        self.spec = spec
        self.streams = streams

    def pre_forward(self, module: Any, *args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        out, total = dict(kwargs), 0
        for tokens_key, mask_key in self.streams:
            text, mask = kwargs[tokens_key], kwargs[mask_key]  # [B, L, D], [B, L]
            if text.shape[0] != 1:
                raise SettingsError(
                    f"context parallel renders one video at a time, got a batch of {text.shape[0]}"
                )
            n = int(mask.sum())
            total += n
            if n == 0:
                continue  # an all-padding stream: left as it is
            if not bool(mask[0, :n].all()):
                raise SettingsError(
                    "context parallel needs text padded on the right (a mask of ones, then zeros)"
                )
            out[tokens_key], out[mask_key] = text[:, :n], mask[:, :n]
        if self.spec.ring > 1:
            _check_even(kwargs["hidden_states"], module, total, self.spec.degree)
        return args, out


def _check_even(latents: torch.Tensor, module: Any, n: int, k: int) -> None:
    """Ring attention (no `ring_anything`: it refuses masks) needs every rank to hold as many tokens."""
    p, pt = module.config.patch_size, module.config.patch_size_t
    _, _, t, h, w = latents.shape  # [B, C, T, H, W]
    video = (t // pt) * (h // p) * (w // p)
    if video % k or n % k:
        raise SettingsError(
            f"ring attention splits tokens evenly: {video} video and {n} text tokens do not divide by {k}; "
            "use ulysses:N"
        )


def _to(obj: Any, device: Any) -> Any:
    """Tensors in a tuple or dict of arguments moved to `device` (pickled CUDA tensors would land on rank 0's)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to(v, device) for v in obj)
    return obj


def _portable(exc: BaseException) -> BaseException:
    """The error itself when it survives pickling, else a RuntimeFailure naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeFailure(f"{type(exc).__name__}: {exc}")


def enable(transformer: Any, group: Group, placement: Any, family: Family) -> None:
    """Apply the family's plan and Ulysses/ring attention to a freshly loaded DiT, as `enable_parallelism` does,
    with the mesh built in `join`; trim the text padding before every forward; on rank 0, send every forward's
    inputs to the other ranks (`render.sampling.mirror`)."""
    from diffusers.hooks import HookRegistry
    from diffusers.hooks.context_parallel import apply_context_parallel

    plan = family.cp_plan()
    for block in family.attention_blocks(transformer):  # not the token refiner's: it sees every text token
        if not hasattr(block.attn.processor, "_parallel_config"):
            raise SettingsError(f"context parallel needs {family.name}'s attention processor, found {block.attn}")
        block.attn.processor._parallel_config = group.config
    transformer._parallel_config = group.config
    apply_context_parallel(transformer, group.config.context_parallel_config, plan)
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.register_hook(TrimTextPadding(group.spec, family.text_streams), "hyv_trim_text_padding")
    if group.rank == 0:  # outermost: the other ranks get every forward's inputs before trimming
        registry.register_hook(BroadcastForward(group, placement), "hyv_broadcast_forward")
