"""The synthetic world of the demo model and its evaluator (the model itself: test_demo_model.py)."""

from __future__ import annotations

import random
from pathlib import Path

from render.demo.evaluate import evaluate_video
from render.demo.world import caption, held_out_captions, parse_caption, random_scene, render
from render.files.video import write_mp4


def test_evaluator_passes_true_videos_and_fails_wrong_ones(tmp_path: Path) -> None:
    rng = random.Random(0)
    for i in range(12):
        scene = random_scene(rng, two_prob=0.0)
        text = caption(scene)
        assert parse_caption(text) == scene
        video = render(scene, 17, 64, 64, rng)  # [F, H, W, 3] uint8
        path = write_mp4(tmp_path / f"v{i}.mp4", video, fps=8)
        assert evaluate_video(path, text).passed, text
        if scene.objects[0].motion != "still":
            backwards = write_mp4(tmp_path / f"r{i}.mp4", video[::-1].copy(), fps=8)  # the reverse motion
            assert not evaluate_video(backwards, text).passed, text


def test_held_out_captions_are_fixed_and_unseen() -> None:
    caps = held_out_captions()
    assert len(caps) == 50 and len(set(caps)) == 50 and caps == held_out_captions()
    rng = random.Random(1)
    seen = {caption(random_scene(rng)) for _ in range(2000)}
    assert not seen & set(caps)
