"""A synthetic video world: one or two flat shapes moving on a plain background, and captions built from it.

"a red circle moves to the right on a black background"
"a blue square moves up and a white triangle stays still on a green background"

Videos are uint8 [F, H, W, 3]. Every combination of attributes is a `Scene`; `caption(scene)` and
`parse_caption(text)` go both ways. Held-out combinations (never seen in training) are defined here once.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads when a video is drawn: parsing a caption (hyv's prompt check) stays instant
    import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 80, 235),
    "yellow": (245, 225, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("left", "right", "up", "down", "still")
MOTION_TEXT = {
    "left": "moves to the left",
    "right": "moves to the right",
    "up": "moves up",
    "down": "moves down",
    "still": "stays still",
}
# Unit displacement of each motion in image coordinates (x to the right, y down).
MOTION_VEC: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "still": (0.0, 0.0),
}


@dataclass(frozen=True)
class Obj:
    colour: str
    shape: str
    motion: str


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]  # one or two, of distinct colours
    background: str  # a colour none of the objects has


def caption(scene: Scene) -> str:
    parts = [f"a {o.colour} {o.shape} {MOTION_TEXT[o.motion]}" for o in scene.objects]
    return f"{' and '.join(parts)} on a {scene.background} background"


_OBJ_RE = re.compile(
    r"\b(?:a|an|the)\s+(?P<colour>" + "|".join(COLOURS) + r")\s+(?P<shape>" + "|".join(SHAPES) + r")s?\s+"
    r"(?P<motion>moves\s+(?:to\s+the\s+)?(?:left|right|up|down)|stays\s+still|does\s+not\s+move|is\s+still)"
)
_BG_RE = re.compile(r"\bon\s+an?\s+(?P<bg>" + "|".join(COLOURS) + r")\s+background\b")


def parse_caption(text: str) -> Scene | None:
    """The scene a caption describes, or None when it is not a caption of this world."""
    t = " ".join(text.lower().split())
    objs = []
    for m in _OBJ_RE.finditer(t):
        words = m.group("motion").split()
        motion = words[-1] if words[0] == "moves" else "still"
        objs.append(Obj(m.group("colour"), m.group("shape"), motion))
    bg = _BG_RE.search(t)
    if not objs or bg is None:
        return None
    return Scene(tuple(objs), bg.group("bg"))


def is_held_out(scene: Scene) -> bool:
    """Attribute combinations kept out of training: a blue triangle (any motion, any background); a green shape on
    a yellow background; a white circle moving up; a red square moving to the left."""
    for o in scene.objects:
        if (o.colour, o.shape) == ("blue", "triangle"):
            return True
        if o.colour == "green" and scene.background == "yellow":
            return True
        if (o.colour, o.shape, o.motion) in (("white", "circle", "up"), ("red", "square", "left")):
            return True
    return False


def all_single_scenes() -> list[Scene]:
    return [
        Scene((Obj(c, s, m),), bg)
        for c in COLOURS
        for s in SHAPES
        for m in MOTIONS
        for bg in COLOURS
        if bg != c
    ]


def held_out_captions() -> list[str]:
    """The 50 fixed held-out captions (one shape each): every single-shape scene `is_held_out` selects."""
    return sorted(caption(s) for s in all_single_scenes() if is_held_out(s))


def random_scene(rng: random.Random, two_prob: float = 0.25, held_out: bool = False) -> Scene:
    """A random training scene (held_out=False: never a held-out combination) or a random held-out one."""
    while True:
        n = 2 if rng.random() < two_prob else 1
        cols = rng.sample(list(COLOURS), n + 1)
        objs = tuple(Obj(cols[i], rng.choice(SHAPES), rng.choice(MOTIONS)) for i in range(n))
        scene = Scene(objs, cols[-1])
        if is_held_out(scene) == held_out:
            return scene


def _shape_mask(shape: str, cx: float, cy: float, r: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    import numpy as np

    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return np.asarray(dx * dx + dy * dy <= r * r)
    if shape == "square":
        h = r * 0.85
        return np.asarray((np.abs(dx) <= h) & (np.abs(dy) <= h))
    # triangle pointing up, centroid at (cx, cy)
    top, base = -r, r * 0.8
    inside_y = (dy >= top) & (dy <= base)
    half = (dy - top) / (base - top) * r * 1.05
    return np.asarray(inside_y & (np.abs(dx) <= half))


# Where each object's path is centred, as fractions of the frame (x, y): one object in the middle; two objects in
# opposite quadrants, so their paths stay apart whatever their motions.
LANES: dict[int, tuple[tuple[float, float], ...]] = {1: ((0.5, 0.5),), 2: ((0.3, 0.3), (0.7, 0.7))}
TRAVEL = {1: 0.4, 2: 0.3}  # distance a moving object travels, as a fraction of the frame side
RADIUS = {1: 0.16, 2: 0.12}  # an object's size (half its width), as a fraction of the frame side


def render(
    scene: Scene, frames: int, height: int, width: int, rng: random.Random, jitter: float = 0.05
) -> np.ndarray:
    """uint8 [F, H, W, 3]. The layout follows from the caption: each object's path is centred on its lane
    (LANES, +- `jitter` of the frame side); a moving object travels TRAVEL of the side in a straight line at constant
    speed; sizes are RADIUS of the side +-8%. A small model trained for minutes on a CPU can learn a world where the
    caption fixes the layout: with random start points the conditional distribution has a mode for every start, and
    a tiny DiT drew scattered patches instead of one blob (docs/demo.md)."""
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    video = np.empty((frames, height, width, 3), np.uint8)
    video[:] = np.array(COLOURS[scene.background], np.uint8)
    size = min(height, width)
    n = len(scene.objects)
    paths = []
    for o, (lx, ly) in zip(scene.objects, LANES[n], strict=True):
        r = size * RADIUS[n] * rng.uniform(0.92, 1.08)
        dist = size * TRAVEL[n]
        ux, uy = MOTION_VEC[o.motion]
        cx = lx * width + rng.uniform(-jitter, jitter) * size
        cy = ly * height + rng.uniform(-jitter, jitter) * size
        paths.append((o, r, cx - ux * dist / 2, cy - uy * dist / 2, ux * dist, uy * dist))
    for f in range(frames):
        a = f / max(1, frames - 1)
        for o, r, x0, y0, dx, dy in paths:
            m = _shape_mask(o.shape, x0 + a * dx, y0 + a * dy, r, yy, xx)
            video[f][m] = COLOURS[o.colour]
    return video
