"""Offload modes: where a stage's model weights live while it computes, decided here and applied with diffusers'
and accelerate's tested mechanisms (this module only chooses and calls them).

- none: the model on the stage's device for the stage.
- model: the model in CPU memory, moved to the device when it computes and back afterwards (accelerate's
  `cpu_offload_with_hook`; the two text encoders take turns, as diffusers' model offloading does).
- group: the model's blocks stay in CPU memory and stream to the device one group (a block) at a time, the next
  one prefetched on a CUDA stream (diffusers' group offloading, block level).
- sequential: every leaf layer streams on its own (diffusers' group offloading, leaf level): the least memory.
- auto: the plan's first mode (in this order, fastest first) whose peak fits the device's free memory.

On a CPU device the weights are already in CPU memory: none and model are the same there, and group/sequential run
the same hooks with CPU as both places (which tests the mechanism, not the saving).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from render.core.errors import SettingsError
from render.core.settings import CONCRETE_MODES, OFFLOAD_MODES


@dataclass(frozen=True)
class Decision:
    """What a mode means for one model on one device (no torch needed: tests check these on any machine)."""

    mode: str
    compute: str  # the device the model computes on
    resident: str  # where its weights wait between uses
    mechanism: str  # what applies it
    streams: bool = False  # CUDA streams prefetch the next group


def decide(mode: str, device: str) -> Decision:
    if mode not in CONCRETE_MODES:
        raise SettingsError(f"unknown offload mode {mode!r}; use {', '.join(OFFLOAD_MODES)}")
    cuda = device.startswith("cuda")
    if mode == "none":
        return Decision(mode, device, device, "module.to(device)")
    if mode == "model":
        if not cuda:
            return Decision(mode, device, device, "module.to(device) (already in CPU memory)")
        return Decision(mode, device, "cpu", "accelerate cpu_offload_with_hook")
    kind = "block_level" if mode == "group" else "leaf_level"
    return Decision(mode, device, "cpu", f"diffusers group offloading ({kind})", streams=cuda)


def place(module: Any, mode: str, device: Any, prev_hook: Any = None) -> Any:
    """Apply `mode` to a loaded module (on the CPU); returns the accelerate hook of model offloading, else None."""
    import torch

    d = decide(mode, str(device))
    if d.mechanism.startswith("module.to"):
        module.to(device)
        return None
    if mode == "model":
        from accelerate import cpu_offload_with_hook

        _, hook = cpu_offload_with_hook(module, execution_device=device, prev_module_hook=prev_hook)
        return hook
    from diffusers.hooks import apply_group_offloading

    kw: dict[str, Any] = {"offload_type": "block_level", "num_blocks_per_group": 1}
    if mode == "sequential":
        kw = {"offload_type": "leaf_level"}
    apply_group_offloading(
        module,
        onload_device=torch.device(device),
        offload_device=torch.device("cpu"),
        use_stream=d.streams,
        **kw,
    )
    return None
