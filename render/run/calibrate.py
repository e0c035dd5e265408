"""`hyv calibrate`: what each step cache costs in quality on this model, measured, and the thresholds to use.

1. A few prompts are rendered uncached (with true CFG when the settings have it, as `hyv run` renders them: the
   caches keep a state per branch, and each branch is watched and fitted as a sequence of its own) while the DiT is
   watched: per step, the modulated input of double block 0
   (what TeaCache looks at) and the residual of all blocks (output of the last minus input of the first: what the
   caches reuse). TeaCache's rescale polynomial is fitted to map the relative L1 change of the one to that of the
   other (degree 4, as TeaCache4HunyuanVideo); MagCache's per-step magnitude ratios are mean(|r_t| / |r_t-1|).
2. The same prompts are rendered with each cache over a grid of thresholds, decoded, and compared with the
   uncached videos: PSNR and SSIM of the frames, the DiT's speed-up (wall time, same process), and on the bundled
   demo model the evaluator's pass rate.
3. For each quality level (25/30/35/40 dB) the largest threshold whose mean PSNR reaches it is chosen; the table,
   the fitted coefficients, the ratios and the choices go into the model's hyv.json ("calibration").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from render.core import hyvjson
from render.core.cachespec import CacheSpec
from render.core.errors import UsageError
from render.sampling.caches import apply as apply_cache
from render.sampling.caches import config_for
from render.sampling.caches import remove as remove_cache

if TYPE_CHECKING:
    from render.core.settings import Settings
    from render.model.family import StepInputs
    from render.run.session import Session
    from render.sampling.teacache import TeaCacheRecipe

QUALITIES = (25.0, 30.0, 35.0, 40.0)  # dB
GRID: dict[str, tuple[float, ...]] = {
    "fbcache": (0.02, 0.05, 0.1, 0.2, 0.3),
    "teacache": (0.05, 0.1, 0.15, 0.25, 0.3, 0.4, 0.5, 0.6),
    "magcache": (0.02, 0.06, 0.12, 0.24, 0.4, 0.6),
    "taylorseer": (2.0, 3.0, 5.0),
    "fastercache": (0.0,),
    "pab": (0.0,),
}
GENERIC_PROMPTS = (
    "A cat walks on the grass, realistic style.",
    "A red car drives along a coastal road at sunset, cinematic lighting.",
    "Waves crash on a rocky shore under a cloudy sky.",
)


@dataclass
class Row:
    cache: str
    psnr_db: float
    ssim: float
    speedup: float
    dit_seconds: float
    passed: int | None = None  # demo model: videos that pass the evaluator


@dataclass
class Calibration:
    prompts: list[str]
    steps: int
    size: list[int]  # frames, height, width
    uncached_dit_seconds: float
    teacache_coefficients: list[float]
    magcache_ratios: list[float]
    table: list[Row] = field(default_factory=list)
    choices: dict[str, dict[str, float]] = field(default_factory=dict)
    uncached_passed: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(
    engine: Session,
    settings: Settings,
    prompts: list[str],
    grid: dict[str, tuple[float, ...]] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Calibration:
    from render.stages.decode import decode_frames

    if engine.family.image_required(engine.model):
        raise UsageError(
            f"calibrate renders from prompts alone, and {engine.model.source} needs a first frame: it is not "
            "available for this model (fbcache and taylorseer need no calibration)"
        )
    kinds = engine.family.cache_kinds
    grid = {k: v for k, v in (grid or GRID).items() if kinds is None or k in kinds}
    s = settings.render
    text = engine.encode_stage()
    template = text.template(s.frames)
    uncond = None
    if s.negative_prompt is not None:  # true CFG, as `hyv run` renders with these settings (two DiT calls a step)
        uncond, _ = text.encode([s.negative_prompt], template, settings.encode)
    conds = []
    for p in prompts:
        tensors, _ = text.encode([p], template, settings.encode)
        conds.append(engine.family.step_inputs(tensors, uncond, s, False, engine.dit_info().config))
    engine.free("encode")
    dit = engine.transformer(s.placement)
    vae = engine.vae(settings.decode.placement, tiling=settings.decode.tiling)

    def frames(lat: Any) -> np.ndarray:
        decoded = decode_frames(vae.module, vae.device, lat, settings.decode.tiling, engine.family)
        return np.asarray(decoded, dtype=np.float64)

    say(f"uncached: {len(prompts)} prompt(s) x {s.steps} steps")
    watch = _Watch(dit.module, engine.family.teacache(), 1 if uncond is None else 2)
    t0 = time.perf_counter()
    reference = [_render(engine, dit, c, s, i) for i, c in enumerate(conds)]
    base_seconds = time.perf_counter() - t0
    watch.close()
    ref_frames = [frames(x) for x in reference]
    cal = Calibration(
        prompts=list(prompts), steps=s.steps, size=[s.frames, s.height, s.width],
        uncached_dit_seconds=round(base_seconds, 3), teacache_coefficients=watch.fit_teacache(len(prompts)),
        magcache_ratios=watch.magcache_ratios(len(prompts), s.steps),
        uncached_passed=_passes(engine, ref_frames, prompts),
    )  # fmt: skip
    for kind, values in grid.items():
        for v in values:
            spec = CacheSpec(kind, v if kind not in ("fastercache", "pab") else None)
            config = config_for(spec, s.steps, cal.as_json(), _clock(engine), engine.family)
            apply_cache(dit.module, config, engine.family)
            try:
                t0 = time.perf_counter()
                outs = [_render(engine, dit, c, s, i) for i, c in enumerate(conds)]
                seconds = time.perf_counter() - t0
            finally:
                remove_cache(dit.module, config)
            pairs = list(zip([frames(x) for x in outs], ref_frames, strict=True))
            got = [a for a, _ in pairs]
            row = Row(
                cache=str(spec), psnr_db=round(float(np.mean([psnr(a, b) for a, b in pairs])), 2),
                ssim=round(float(np.mean([ssim(a, b) for a, b in pairs])), 4),
                speedup=round(base_seconds / seconds, 2), dit_seconds=round(seconds, 3),
                passed=_passes(engine, got, prompts),
            )  # fmt: skip
            say(f"{row.cache}: {row.speedup}x, {row.psnr_db} dB, SSIM {row.ssim}")
            cal.table.append(row)
    cal.choices = choose(cal.table)
    return cal


def choose(table: list[Row]) -> dict[str, dict[str, float]]:
    """{kind: {"30db": threshold, ...}}: for each quality, the largest threshold such that it and every smaller
    one reach that mean PSNR (quality is not monotone in the threshold: a lucky large one is not trusted)."""
    by_kind: dict[str, list[tuple[float, float]]] = {}
    for row in table:
        spec = CacheSpec.parse(row.cache)
        if spec.value is not None:
            by_kind.setdefault(spec.kind, []).append((spec.value, row.psnr_db))
    out: dict[str, dict[str, float]] = {}
    for kind, rows in by_kind.items():
        for q in QUALITIES:
            best = None
            for value, db in sorted(rows):
                if db < q:
                    break
                best = value
            if best is not None:
                out.setdefault(kind, {})[f"{q:g}db"] = best
    return out


def write(model_dir: Path, cal: Calibration) -> Path:
    """Put the calibration into the model's hyv.json (its other contents kept), atomically."""
    return hyvjson.write_section(model_dir, "calibration", cal.as_json())


def _clock(engine: Session) -> Callable[[], int]:
    return lambda: int(engine.clock)


def _render(engine: Session, dit: Any, inputs: StepInputs, s: Any, index: int) -> Any:
    import torch

    from render.sampling.sample import denoise, initial_noise, set_schedule

    scheduler = engine.scheduler(s.shift)
    set_schedule(scheduler, s.steps, dit.device)
    dtype = dit.module.dtype if engine.family.noise_in_dit_dtype else torch.float32
    noise = initial_noise(engine.dit_info().latent_shape(s), s.seed + index, dit.device, dtype)
    cfg = s.cfg_scale if inputs.uncond is not None else 1.0
    return denoise(
        dit.module, scheduler, noise, inputs, cfg_scale=cfg, start=0, end=s.steps, before_step=engine.tick,
    )  # fmt: skip


def _passes(engine: Session, videos: list[np.ndarray], prompts: list[str]) -> int | None:
    if not engine.model.bundled:
        return None
    from render.demo.evaluate import evaluate_frames

    return sum(evaluate_frames(v.astype(np.uint8), p).passed for v, p in zip(videos, prompts, strict=True))


class _Watch:
    """Forward hooks that record, per DiT call, block 0's modulated input (the family's TeaCache recipe says how it
    is computed) and the blocks' residual. With true CFG a step makes `calls` DiT calls (cond, then uncond): each
    branch is a sequence of its own, as the caches keep a state per branch."""

    def __init__(self, transformer: Any, recipe: TeaCacheRecipe, calls: int = 1) -> None:
        from diffusers.hooks._helpers import TransformerBlockRegistry

        blocks = recipe.blocks(transformer)
        self.recipe = recipe
        self.calls = calls
        self.meta = TransformerBlockRegistry.get(blocks[0].__class__)
        self.modulated: list[Any] = []
        self.residuals: list[Any] = []
        self._head_in: Any = None
        self._handles = [
            blocks[0].register_forward_pre_hook(self._pre, with_kwargs=True),
            blocks[-1].register_forward_hook(self._post),
        ]

    def _pre(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = self.meta._get_parameter_from_args_kwargs("hidden_states", args, kwargs)
        temb = self.meta._get_parameter_from_args_kwargs("temb", args, kwargs)
        self.modulated.append(self.recipe.modulated(module, hidden, temb).float())
        self._head_in = hidden.float()

    def _post(self, module: Any, args: Any, out: Any) -> None:
        self.residuals.append(out[0].float() - self._head_in)

    def close(self) -> None:
        for h in self._handles:
            h.remove()

    def fit_teacache(self, videos: int, degree: int = 4) -> list[float]:
        """The polynomial (highest power first) from the relative L1 change of the modulated input to that of the
        residual, over consecutive steps of every video."""
        x, y = [], []
        for m, r in self._sequences(videos):
            for t in range(1, len(m)):
                x.append(_rel_l1(m[t], m[t - 1]))
                y.append(_rel_l1(r[t], r[t - 1]))
        if len(x) <= degree:
            slope = float(np.mean(y)) / max(float(np.mean(x)), 1e-12) if x else 1.0
            return [0.0] * (degree - 1) + [slope, 0.0]
        return [float(c) for c in np.polyfit(np.array(x), np.array(y), degree)]

    def magcache_ratios(self, videos: int, steps: int) -> list[float]:
        """[1.0, mean over tokens and videos of |r_t| / |r_t-1| for t >= 1]."""
        ratios = np.zeros(steps)
        sequences = self._sequences(videos)
        for _, r in sequences:
            for t in range(1, min(steps, len(r))):
                ratios[t] += float((r[t].norm(dim=-1) / r[t - 1].norm(dim=-1).clamp_min(1e-12)).mean())
        ratios /= max(1, len(sequences))
        ratios[0] = 1.0
        return [round(float(v), 5) for v in ratios]

    def _sequences(self, videos: int) -> list[tuple[list[Any], list[Any]]]:
        """(modulated inputs, residuals) of each video and branch, step after step."""
        per = len(self.modulated) // max(1, videos)
        out = []
        for v in range(videos):
            m, r = self.modulated[v * per : (v + 1) * per], self.residuals[v * per : (v + 1) * per]
            out += [(m[b :: self.calls], r[b :: self.calls]) for b in range(self.calls)]
        return out


def _rel_l1(now: Any, before: Any) -> float:
    return float(((now - before).abs().mean() / before.abs().mean().clamp_min(1e-12)).item())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8-valued videos [F, H, W, 3] (identical: 100)."""
    mse = float(np.mean((a - b) ** 2))
    return 100.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the frames' luma (Gaussian window 11, sigma 1.5, as Wang et al.)."""
    weights = np.array([0.299, 0.587, 0.114])
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for fa, fb in zip(a @ weights, b @ weights, strict=True):
        mu_a, mu_b = _blur(fa), _blur(fb)
        va = _blur(fa * fa) - mu_a**2
        vb = _blur(fb * fb) - mu_b**2
        cov = _blur(fa * fb) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
        vals.append(float(s.mean()))
    return float(np.mean(vals))


def _blur(img: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """A separable Gaussian blur [H, W] with reflected borders (SSIM's 11-tap window)."""
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    out = img
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="reflect")
        n = out.shape[axis]
        out = sum(w * np.take(p, range(i, i + n), axis=axis) for i, w in enumerate(k))
    return out
