"""Peak memory of real modules run on meta tensors: exact shapes, no data, no allocation.

`MemoryTracker` is a TorchDispatchMode that sees every tensor an op creates, counts its storage once (views share
it) and subtracts it when the storage dies: `peak` is the most bytes alive at once, as a caching allocator would
have to hold them (without its rounding and fragmentation). `FusedAttention` stands in for
`F.scaled_dot_product_attention` with what the fused GPU kernels (flash / memory-efficient) allocate, the output
and a log-sum-exp per query, instead of the n x n matrix the math fallback on meta tensors would build.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary


class MemoryTracker(TorchDispatchMode):
    """`cpu_conv`: also count what PyTorch's CPU 3D convolution allocates inside its kernel (invisible to a
    dispatch mode): oneDNN holds a reordered copy the size of the larger of its input and output (measured: RSS of
    one conv3d = output + max(input, output)); below ATen's size threshold for oneDNN (N*C*T*H <= 20480) the
    native kernel builds im2col columns, C_in * kT*kH*kW * output volume. GPU convolutions use bounded cuDNN
    workspaces, not counted."""

    def __init__(self, cpu_conv: bool = False) -> None:
        super().__init__()
        self.cpu_conv = cpu_conv
        self._live: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.current = 0
        self.peak = 0
        self._windows: list[list[int]] = []  # [peak within a window] per open window

    def _note(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        if storage in self._live:
            return
        n = storage.nbytes()
        self._live[storage] = n
        self.current += n
        self._raise_to(self.current)
        weakref.finalize(storage, self._free, n)

    def _free(self, n: int) -> None:
        self.current -= n

    def _raise_to(self, level: int) -> None:
        self.peak = max(self.peak, level)
        for w in self._windows:
            w[0] = max(w[0], level)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._note(t)
        conv = func.overloadpacket in (torch.ops.aten.convolution, torch.ops.aten.conv3d)
        if self.cpu_conv and conv and args[0].ndim == 5:
            self.bump(cpu_conv3d_workspace(args[0], args[1], out))
        return out

    @contextmanager
    def window(self) -> Iterator[list[int]]:
        """The peak reached inside a with-block (w[0] after it)."""
        w = [self.current]
        self._windows.append(w)
        try:
            yield w
        finally:
            self._windows.remove(w)

    def bump(self, extra: int) -> None:
        """Record a transient of `extra` bytes above what is alive now (a memoised call's internal peak)."""
        self._raise_to(self.current + extra)


class FusedAttention(TorchFunctionMode):
    """F.scaled_dot_product_attention as the fused GPU kernels allocate: out [B, H, L, Dv] + lse [B, H, L] fp32."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            a = dict(zip(("query", "key", "value"), args, strict=False)) | kwargs
            q, v = a["query"], a["value"]
            lse = q.new_empty(q.shape[:-1], dtype=torch.float32)  # freed when the call returns
            out = q.new_empty((*q.shape[:-1], v.shape[-1]))
            del lse
            return out
        return func(*args, **kwargs)


def memoize_forward(module: torch.nn.Module, tracker: MemoryTracker) -> Callable[[], None]:
    """Run `module` for real once per distinct input shape; later calls with that shape allocate only the output
    and record the internal peak measured the first time (a tiled VAE decode calls its decoder hundreds of times
    on a few shapes). Returns an undo function."""
    cache: dict[Any, tuple[torch.Size, torch.dtype, int]] = {}
    original = module.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        key = tuple((tuple(t.shape), t.dtype) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor))
        if key in cache:
            shape, dtype, extra = cache[key]
            tracker.bump(extra)
            return torch.empty(shape, dtype=dtype, device="meta")
        with tracker.window() as w:
            base = tracker.current
            out = original(*args, **kwargs)
        cache[key] = (out.shape, out.dtype, w[0] - base)
        return out

    module.forward = forward  # type: ignore[method-assign]

    def undo() -> None:
        module.forward = original  # type: ignore[method-assign]

    return undo


def memoize_inplace(owner: Any, name: str, tracker: MemoryTracker, returns: int) -> Callable[[], None]:
    """Like memoize_forward for a method that writes into its argument number `returns` and returns it (diffusers'
    VAE tile blending: a Python loop of hundreds of ops per tile)."""
    cache: dict[Any, int] = {}
    original = getattr(owner, name)

    def method(*args: Any, **kwargs: Any) -> Any:
        key: tuple[Any, ...] = tuple(
            (tuple(t.shape), t.dtype) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
        )
        key += tuple(a for a in args if isinstance(a, int))
        if key in cache:
            tracker.bump(cache[key])
            return args[returns]
        with tracker.window() as w:
            base = tracker.current
            out = original(*args, **kwargs)
        cache[key] = w[0] - base
        return out

    setattr(owner, name, method)
    return lambda: delattr(owner, name)


def cpu_conv3d_workspace(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> int:
    """Bytes PyTorch's CPU conv3d allocates internally for input x [N, C, T, H, W], weight w, output out."""
    n, c, t, h = x.shape[:4]
    if n * c * t * h > 20480:  # ATen's ConvParams::use_mkldnn threshold
        return max(x.numel() * x.element_size(), out.numel() * out.element_size())
    k = w.shape[2] * w.shape[3] * w.shape[4]
    return int(c * k * out.shape[2] * out.shape[3] * out.shape[4] * out.element_size())  # im2col columns
