"""The oracle: diffusers' HunyuanVideoPipeline on the same weights and seed gives the same latents and frames."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from render.encode import TextEncoderStage
from render.settings import EncodeSettings
from render.templates import VIDEO_TEMPLATE
from tests.conftest import SMALL_ARGS, hyv

PROMPT = "A cat walks on the grass, realistic style."


def _pipeline(model: Path):  # type: ignore[no-untyped-def]
    from diffusers import HunyuanVideoPipeline

    return HunyuanVideoPipeline.from_pretrained(str(model)).to("cpu")


def _crop_start(model: Path) -> int:
    from render.loading import ModelRef

    return TextEncoderStage(ModelRef(model, str(model)), EncodeSettings()).template(9).crop_start


def test_template_matches_diffusers() -> None:
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    assert DEFAULT_PROMPT_TEMPLATE["template"] == VIDEO_TEMPLATE


@pytest.mark.parametrize("cfg", [1.0, 2.5])
def test_latents_and_frames_equal_diffusers(tiny_model: Path, tmp_path: Path, runner, cfg: float) -> None:  # type: ignore[no-untyped-def]
    work = tmp_path / "w"
    extra = ["--cfg-scale", str(cfg), "--neg-prompt", "blurry, low quality"] if cfg > 1 else []
    res = hyv(
        runner, "run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--seed", "42", "--workdir", work, *extra
    )
    assert res.exit_code == 0, res.output
    ours = load_file(str(next((work / "latents").glob("*.safetensors"))))["latents"]
    emb = load_file(
        str(next(p for p in (work / "embeddings").glob("*.safetensors") if "negative" not in p.name))
    )

    pipe = _pipeline(tiny_model)
    template = {"template": VIDEO_TEMPLATE, "crop_start": _crop_start(tiny_model)}
    pe, ppe, pam = pipe.encode_prompt(PROMPT, prompt_template=template, device=torch.device("cpu"))
    assert torch.equal(pe, emb["prompt_embeds"])
    assert torch.equal(pam, emb["prompt_attention_mask"])
    assert torch.equal(ppe, emb["pooled_prompt_embeds"])

    kwargs = dict(
        prompt=PROMPT,
        prompt_template=template,
        num_frames=9,
        height=32,
        width=32,
        num_inference_steps=4,
        guidance_scale=6.0,
        generator=torch.Generator("cpu").manual_seed(42),
    )
    if cfg > 1:
        kwargs.update(negative_prompt="blurry, low quality", true_cfg_scale=cfg)
    ref = pipe(**kwargs, output_type="latent").frames  # type: ignore[arg-type]
    assert ours.shape == ref.shape == (1, 4, 3, 4, 4)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)

    # Decoding: diffusers' frames in [0, 1] against ours, through the same VAE.
    from render.decode import VAEStage
    from render.loading import ModelRef
    from render.settings import DecodeSettings

    ref_np = pipe(**{**kwargs, "generator": torch.Generator("cpu").manual_seed(42)}, output_type="np").frames[
        0
    ]
    frames = VAEStage(ModelRef(tiny_model, "tiny"), DecodeSettings()).decode(ours)  # [F, H, W, 3] uint8
    assert frames.shape == ref_np.shape == (9, 32, 32, 3)
    assert abs(frames.astype(float) - (ref_np * 255).round()).max() <= 1.0


def test_crop_start_is_measured_not_assumed(tiny_model: Path) -> None:
    """95 is the Llama-3 figure: the tiny tokenizer gives its own, and the crop keeps no template token."""
    from render.loading import ModelRef

    st = TextEncoderStage(ModelRef(tiny_model, "t"), EncodeSettings())
    t = st.template(9)
    assert t.crop_start != 95
    ids = st.tokenizer(t.text.format("zebra"))["input_ids"]
    prefix = st.tokenizer(t.text.split("{}")[0])["input_ids"]
    assert ids[: t.crop_start] == prefix[: t.crop_start]
    assert st.tokenizer.decode(ids[t.crop_start :]).startswith("zebra")
    assert st.template(1).crop_start < t.crop_start  # the image template is shorter
