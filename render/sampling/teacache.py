"""TeaCache as diffusers model hooks (diffusers 0.42 has none), in the style of its First Block Cache: stateful
hooks on the DiT's blocks, one state per cache context ("cond" / "uncond"), reset with the other stateful hooks,
so it composes with offloading and the rest. A family gives its recipe (`TeaCacheRecipe`: its blocks in order, how
block 0's modulated input is computed, its published rescale polynomial).

At each step the head hook (on block 0) computes that block's modulated input (its AdaLN-Zero norm of the video
tokens) and accumulates the rescaled relative L1 change against the last step:
    acc += poly(mean|m_t - m_{t-1}| / mean|m_{t-1}|)
While acc stays under the threshold, every block is skipped and the cached residual of the last computed step
(output of the last block minus input of the first, for both token streams) is added instead; otherwise all blocks
run, acc restarts at 0 and the residual is refreshed. The first and the last step are always computed (the step
comes from the cache context: `cache_context(name, step_index=i, num_inference_steps=n)`).
`hyv calibrate` fits a polynomial per model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.hooks import HookRegistry
from diffusers.hooks._helpers import TransformerBlockRegistry
from diffusers.hooks.hooks import BaseState, ModelHook, StateManager

_HEAD = "hyv_teacache_head"
_BLOCK = "hyv_teacache_block"


@dataclass(frozen=True)
class TeaCacheRecipe:
    """A family's TeaCache: its DiT's blocks in order, the modulated input of block 0 from (block, video tokens,
    temb), and the published rescale polynomial (highest power first)."""

    blocks: Callable[[Any], list[Any]]
    modulated: Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor]
    coefficients: tuple[float, ...]


def adaln_modulated(block: Any, hidden: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
    """Block 0's AdaLN-Zero norm of the video tokens [B, N, D] (what TeaCache watches), for DiTs whose blocks have
    diffusers' `norm1(hidden, emb=temb)` (HunyuanVideo's and 1.5's)."""
    return block.norm1(hidden, emb=temb)[0]


@dataclass
class TeaCacheConfig:
    coefficients: tuple[float, ...]  # the rescale polynomial, highest power first (the family's, or calibrated)
    threshold: float = 0.15  # TeaCache's 2.1x setting on HunyuanVideo (0.1: 1.6x)


class _State(BaseState):
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.previous: torch.Tensor | None = None  # the modulated input of the last step [B, N, D]
        self.accumulated = 0.0
        self.residual: tuple[torch.Tensor, torch.Tensor] | None = None  # (video, text) streams
        self.head_inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.compute = True
        self.computed_steps = 0
        self.skipped_steps = 0


def _inputs(meta: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        meta._get_parameter_from_args_kwargs("hidden_states", args, kwargs),
        meta._get_parameter_from_args_kwargs("encoder_hidden_states", args, kwargs),
    )


class _Hook(ModelHook):
    def _forward(self, *args: Any, **kwargs: Any) -> Any:
        fn: Any = self.fn_ref
        return fn.original_forward(*args, **kwargs)


class _HeadHook(_Hook):
    _is_stateful = True

    def __init__(self, states: StateManager, config: TeaCacheConfig, recipe: TeaCacheRecipe) -> None:
        super().__init__()
        self.states = states
        self.threshold = config.threshold
        self.poly = np.poly1d(config.coefficients)
        self.modulated = recipe.modulated

    def initialize_hook(self, module: torch.nn.Module) -> torch.nn.Module:
        self.meta = TransformerBlockRegistry.get(module.__class__)
        return module

    def new_forward(self, module: Any, *args: Any, **kwargs: Any) -> Any:
        hidden, encoder = _inputs(self.meta, args, kwargs)
        temb = self.meta._get_parameter_from_args_kwargs("temb", args, kwargs)
        modulated = self.modulated(module, hidden, temb)  # [B, N, D]: AdaLN-Zero of the video tokens
        state: _State = self.states.get_state()
        context = self.states.context
        step, steps = context.step_index, context.num_inference_steps
        edge = step is None or steps is None or step == 0 or step >= steps - 1
        if edge or state.previous is None or state.residual is None:
            state.compute, state.accumulated = True, 0.0
        else:
            state.accumulated += float(self.poly(_relative_l1(modulated, state.previous)))
            state.compute = state.accumulated >= self.threshold
            if state.compute:
                state.accumulated = 0.0
        state.previous = modulated.detach()
        if not state.compute:
            assert state.residual is not None
            state.skipped_steps += 1
            return hidden + state.residual[0], encoder + state.residual[1]
        state.computed_steps += 1
        state.head_inputs = (hidden, encoder)
        return self._forward(*args, **kwargs)

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.states.reset()
        return module


class _BlockHook(_Hook):
    def __init__(self, states: StateManager, tail: bool) -> None:
        super().__init__()
        self.states = states
        self.tail = tail

    def initialize_hook(self, module: torch.nn.Module) -> torch.nn.Module:
        self.meta = TransformerBlockRegistry.get(module.__class__)
        return module

    def new_forward(self, module: Any, *args: Any, **kwargs: Any) -> Any:
        state: _State = self.states.get_state()
        if not state.compute:
            return _inputs(self.meta, args, kwargs)  # the head already added the cached residual
        out = self._forward(*args, **kwargs)
        if self.tail and state.head_inputs is not None:
            h = out[self.meta.return_hidden_states_index]
            e = out[self.meta.return_encoder_hidden_states_index]
            state.residual = (h - state.head_inputs[0], e - state.head_inputs[1])
            state.head_inputs = None
        return out


@torch.compiler.disable
def _relative_l1(now: torch.Tensor, before: torch.Tensor) -> float:
    return float(((now - before).abs().mean() / before.abs().mean()).item())


def apply_teacache(transformer: torch.nn.Module, config: TeaCacheConfig, recipe: TeaCacheRecipe) -> None:
    """Register TeaCache's hooks on a DiT's blocks (the recipe's, in order)."""
    blocks = recipe.blocks(transformer)
    states = StateManager(_State, (), {})  # type: ignore[arg-type]
    head = _HeadHook(states, config, recipe)
    HookRegistry.check_if_exists_or_initialize(blocks[0]).register_hook(head, _HEAD)
    for i, block in enumerate(blocks[1:], start=1):
        hook = _BlockHook(states, tail=i == len(blocks) - 1)
        HookRegistry.check_if_exists_or_initialize(block).register_hook(hook, _BLOCK)
    HookRegistry.check_if_exists_or_initialize(transformer).invalidate_child_registries_cache()


def remove_teacache(transformer: torch.nn.Module) -> None:
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.remove_hook(_HEAD, recurse=True)
    registry.remove_hook(_BLOCK, recurse=True)
    registry.invalidate_child_registries_cache()


def skip_counts(transformer: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """{context: (computed steps, skipped steps)} of the current render (before its state is reset)."""
    for module in transformer.modules():
        registry = getattr(module, "_diffusers_hook", None)
        head: Any = registry.get_hook(_HEAD) if registry is not None else None
        if head is not None:
            return {name: (s.computed_steps, s.skipped_steps) for name, s in head.states._state_cache.items()}
    return {}
