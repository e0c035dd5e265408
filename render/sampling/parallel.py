"""Context parallelism for one video: a DiT split over the ranks of a `torchrun` job.

diffusers 0.42 has the machinery (`ContextParallelConfig`, the split/gather hooks of
`diffusers.hooks.context_parallel`, Ulysses and ring attention in `attention_dispatch`) but ships no plan for
HunyuanVideo's DiTs. Each family gives its plan (`Family.cp_plan`); HunyuanVideo's:

    rope              its outputs (cos, sin) [N_v, D_head] split on the token dim: each rank ropes its own tokens
    x_embedder        its output, the video tokens [B, N_v, C], split on the token dim
    context_embedder  its output, the refined text tokens [B, L, C], split on the token dim. The token refiner
                      itself runs whole on every rank: its pooled mean and its self-attention need every text
                      token, and it is 2 layers over ~256 tokens (well under 0.1% of a 720p forward)
    proj_out          its output [B, N_v, p*p*C] gathered back on the token dim, so every rank gets the result

Everything between (20 double blocks, 40 single blocks) then runs on each rank's share of the tokens; the
joint attention of every block is diffusers' Ulysses (all-to-all over heads) or ring attention.

The padding mask: the forward builds its key mask from the lengths it sees, i.e. the local ones, and marks the
first `local video + total valid text` keys valid. That is only right when no text token is padding, so before
every forward `TrimTextPadding` drops the padded text tokens (the prompt's mask is a prefix of ones: hyv pads on
the right; batch 1, which is how hyv calls the DiT). The mask is then all ones and every rank's local mask is
right; Ulysses gathers it along with the keys. Dropping keys that the mask hid anyway changes nothing but
rounding (ParaAttention's adapter trims the same way). Trimmed text rarely splits evenly, so Ulysses runs in
diffusers' `ulysses_anything` mode (uneven shares).

Ring attention needs an attention backend that returns the log-sum-exp: diffusers' native backend, the only one
on a CPU, does not, and of those that do only `_native_cudnn` (CUDA) takes the mask HunyuanVideo's forward always
passes. `ring_anything` refuses any mask, so ring needs even shares of video and trimmed text tokens. `ulysses:A,ring:B`
is refused: diffusers' unified attention hands the mask, still at its local length, to ring attention over keys
the all-to-all has made A times longer (read from diffusers 0.42's source; no GPU was at hand to run ring here).
"""

from __future__ import annotations

import atexit
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from render.core.errors import SettingsError, UsageError

# Attention backends with which diffusers' ring attention runs HunyuanVideo (log-sum-exp and a key mask).
RING_BACKENDS = ("_native_cudnn",)
_SPEC = re.compile(r"^(ulysses|ring):(\d+)$")


@dataclass(frozen=True)
class ParallelSpec:
    """How the sequence is split: Ulysses degree x ring degree = the number of ranks."""

    ulysses: int = 1
    ring: int = 1

    @property
    def degree(self) -> int:
        return self.ulysses * self.ring

    def describe(self) -> dict[str, int]:
        return {"ulysses": self.ulysses, "ring": self.ring}


def parse_parallel(text: str) -> ParallelSpec:
    """`ulysses:N`, `ring:N` or `ulysses:A,ring:B` (N, A, B >= 1; their product >= 2)."""
    found: dict[str, int] = {}
    for part in text.replace(" ", "").split(","):
        m = _SPEC.match(part)
        if m is None or m.group(1) in found:
            raise UsageError(f"--parallel {text!r}: write ulysses:N, ring:N or ulysses:A,ring:B")
        found[m.group(1)] = int(m.group(2))
    spec = ParallelSpec(found.get("ulysses", 1), found.get("ring", 1))
    if min(spec.ulysses, spec.ring) < 1 or spec.degree < 2:
        raise UsageError(f"--parallel {text!r}: the degrees must be >= 1 and multiply to at least 2")
    return spec


def follower_rank(spec: str | None) -> bool:
    """Whether this process is a torchrun rank other than 0 of a --parallel job (read from the environment,
    before anything is imported or joined): such a rank prints nothing; rank 0 reports."""
    return spec is not None and os.environ.get("RANK", "0") != "0"


@dataclass
class Group:
    """This process's place in the job: its rank, device, diffusers' parallel config, and a gloo group with a
    long timeout for the lead/follow messages (rank 0 may encode or decode for hours while the others wait)."""

    spec: ParallelSpec
    rank: int
    world: int
    device: Any  # torch.device
    config: Any  # diffusers ParallelConfig, set up once: its mesh and sub-groups are collective to build
    control: Any  # torch.distributed ProcessGroup (gloo)
    broken: str | None = None  # why the group cannot run another forward (an error inside one)


def join(text: str) -> Group:
    """Join the torchrun job (its environment names the rank, world size and rendezvous) and build the device
    mesh and diffusers' ContextParallelConfig. Collective: every rank calls it at the same point."""
    spec = parse_parallel(text)
    missing = [
        v for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ
    ]
    if missing:
        raise UsageError(
            f"--parallel {text} runs under torchrun, one process per rank: "
            f"torchrun --nproc_per_node={spec.degree} -m hunyuan_cli ... --parallel {text}"
        )
    world = int(os.environ["WORLD_SIZE"])
    if world != spec.degree:
        raise UsageError(f"--parallel {text} needs {spec.degree} ranks, torchrun started {world}")
    _check_backend(text, spec)
    import torch
    import torch.distributed as dist
    from diffusers.models._modeling_parallel import ContextParallelConfig, ParallelConfig
    from torch.distributed.device_mesh import init_device_mesh

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    control = dist.new_group(backend="gloo", timeout=timedelta(hours=24))
    cp = ContextParallelConfig(
        ulysses_degree=spec.ulysses, ring_degree=spec.ring, ulysses_anything=spec.ring == 1
    )
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    # The mesh is built here, not by `ModelMixin.enable_parallelism`: that derives the device from
    # `rank % torch.accelerator.device_count()`, which divides by zero on a CPU.
    mesh = init_device_mesh(device.type, mesh_shape=cp.mesh_shape, mesh_dim_names=cp.mesh_dim_names)
    config = ParallelConfig(context_parallel_config=cp)
    config.setup(rank, world, device, mesh=mesh)
    group = Group(spec, rank, world, device, config, control)
    atexit.register(_leave, group)
    return group


def _leave(group: Group) -> None:
    """At exit every rank waits for the others, so that rank 0 has printed the job's report or error before any
    rank ends (torchrun stops the job when the first rank fails)."""
    import torch.distributed as dist

    if group.broken is not None or not dist.is_initialized():
        return  # the other ranks are inside a forward's collectives: torchrun ends them
    try:
        dist.monitored_barrier(group=group.control, timeout=timedelta(seconds=60))
        dist.destroy_process_group()
    except RuntimeError:
        pass


def _check_backend(text: str, spec: ParallelSpec) -> None:
    """The attention backend (diffusers': DIFFUSERS_ATTN_BACKEND, else native) must split attention for a context
    parallel job, and for ring also return the log-sum-exp and take HunyuanVideo's mask."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    backend = os.environ.get("DIFFUSERS_ATTN_BACKEND", "native")
    if backend not in _AttentionBackendRegistry._supports_context_parallel:
        raise SettingsError(
            f"--parallel {text}: diffusers' {backend} attention backend cannot run context parallel"
        )
    if spec.ring > 1 and spec.ulysses > 1:
        raise SettingsError(
            f"--parallel {text}: diffusers' unified Ulysses+ring attention passes the key mask on at its local length "
            "after the all-to-all has gathered the keys, and HunyuanVideo's forward always passes one; use ulysses:N"
        )
    if spec.ring > 1 and backend not in RING_BACKENDS:
        raise SettingsError(
            f"--parallel {text}: ring attention needs an attention backend that returns the log-sum-exp and "
            f"takes HunyuanVideo's key mask ({', '.join(RING_BACKENDS)}, CUDA; set DIFFUSERS_ATTN_BACKEND); "
            f"diffusers' {backend} backend does not (it is the only one on a CPU); use ulysses:N"
        )
