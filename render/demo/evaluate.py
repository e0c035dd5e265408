"""Judge a generated video of the demo world against its caption.

Per frame, the pixels of the prompted colour (nearest palette colour, and close to it) form a blob; its centroid is
tracked. An object passes when the blob is present in most frames and its centroid moves in the prompted direction
(or stays put); a video passes when every captioned object passes and the background has the prompted colour.

    python -m render.demo.evaluate VIDEO.mp4 "a red circle moves to the right on a black background"
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from render.demo.world import COLOURS, MOTION_VEC, Obj, parse_caption

MAX_DIST = 90.0  # RGB distance within which a pixel counts as a palette colour (H.264 and VAE blur)
MIN_PIXELS_FRAC = 0.003  # a blob needs at least this fraction of the frame (12 px at 64x64)
MIN_PRESENT = 0.8  # ... in at least this fraction of the frames
MIN_BG_FRAC = 0.4  # the prompted background covers at least this fraction of the pixels on average
MIN_MOVE = (
    0.12  # a moving object's centroid travels at least this fraction of the frame side, along its direction
)
MAX_STILL = 0.06  # a still object's centroid moves less than this fraction of the frame side
EDGE = 3  # frames averaged at each end for the start and end positions


@dataclass
class ObjectResult:
    obj: Obj
    passed: bool
    reason: str
    present: float  # fraction of frames with the blob
    displacement: tuple[float, float] | None  # (dx, dy) in pixels, x right and y down


@dataclass
class EvalResult:
    caption: str
    passed: bool
    reason: str
    objects: list[ObjectResult] = field(default_factory=list)
    background: float = 0.0  # mean fraction of pixels of the background colour


def palette_labels(frames: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """frames uint8 [F, H, W, 3] -> int labels [F, H, W]: the index of the nearest palette colour, or -1 when no
    palette colour is within MAX_DIST."""
    names = list(COLOURS)
    pal = np.array([COLOURS[n] for n in names], np.float32)  # [K, 3]
    d = np.linalg.norm(frames[..., None, :].astype(np.float32) - pal, axis=-1)  # [F, H, W, K]
    lab = d.argmin(-1)
    lab[d.min(-1) > MAX_DIST] = -1
    return lab, names


def _judge_object(o: Obj, mask: np.ndarray) -> ObjectResult:
    f, h, w = mask.shape
    side = float(min(h, w))
    counts = mask.reshape(f, -1).sum(1)
    present = counts >= max(4, MIN_PIXELS_FRAC * h * w)
    frac = float(present.mean())
    if frac < MIN_PRESENT:
        return ObjectResult(
            o, False, f"{o.colour} {o.shape}: colour present in {frac:.0%} of frames", frac, None
        )
    yy, xx = np.mgrid[0:h, 0:w]
    idx = np.flatnonzero(present)
    cents = np.array(
        [[(xx * mask[i]).sum() / counts[i], (yy * mask[i]).sum() / counts[i]] for i in idx]
    )  # [n, 2]
    k = min(EDGE, max(1, len(idx) // 3))
    d = cents[-k:].mean(0) - cents[:k].mean(0)
    dx, dy = float(d[0]), float(d[1])
    ux, uy = MOTION_VEC[o.motion]
    name = f"{o.colour} {o.shape}"
    if o.motion == "still":
        moved = float(np.hypot(dx, dy))
        ok = moved < MAX_STILL * side
        why = f"{name}: moved {moved:.1f} px (still needs < {MAX_STILL * side:.1f})"
    else:
        along = dx * ux + dy * uy
        across = abs(-dx * uy + dy * ux)
        ok = along >= MIN_MOVE * side and along >= 2 * across
        why = f"{name}: moved {along:.1f} px {o.motion} and {across:.1f} px across (needs >= {MIN_MOVE * side:.1f})"
    return ObjectResult(o, ok, why, frac, (dx, dy))


def evaluate_frames(frames: np.ndarray, text: str) -> EvalResult:
    """frames uint8 [F, H, W, 3] against a caption of the demo world."""
    scene = parse_caption(text)
    if scene is None:
        return EvalResult(text, False, "not a caption of the demo world")
    lab, names = palette_labels(frames)
    bg = float((lab == names.index(scene.background)).mean())
    objs = [_judge_object(o, lab == names.index(o.colour)) for o in scene.objects]
    reasons = [r.reason for r in objs]
    ok = all(r.passed for r in objs)
    if bg < MIN_BG_FRAC:
        ok = False
        reasons.append(
            f"{scene.background} background covers {bg:.0%} of the pixels (needs {MIN_BG_FRAC:.0%})"
        )
    return EvalResult(text, ok, "; ".join(reasons), objs, bg)


def evaluate_video(path: Path | str, text: str) -> EvalResult:
    from render.files.video import read_mp4

    frames, _ = read_mp4(Path(path))
    return evaluate_frames(frames, text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m render.demo.evaluate VIDEO.mp4 CAPTION", file=sys.stderr)
        return 2
    if not Path(args[0]).is_file():
        print(f"error: no such video: {args[0]}", file=sys.stderr)
        return 2
    r = evaluate_video(args[0], args[1])
    print(f"{'PASS' if r.passed else 'FAIL'}: {r.reason}")
    return 0 if r.passed else 1


if __name__ == "__main__":
    sys.exit(main())
