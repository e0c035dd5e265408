"""Tencent's own HunyuanVideo 1.5 super-resolution (`HunyuanVideo_1_5_SR_Pipeline`) on the CPU, for the oracle test
of tests/test_sr.py. Run by that test in a subprocess, with the Python of an environment that has Tencent's few
extra dependencies (einops, loguru) beside torch and diffusers (HYV_TENCENT_PYTHON), on a checkout of Tencent's
repository (HYV_TENCENT_HV15: Tencent-Hunyuan/HunyuanVideo-1.5; checked at commit 60783e7):

    python tests/tencent_sr.py fixture DIR --version 720p_sr_distilled
        tiny random weights built with Tencent's classes, saved in Tencent's layout:
        DIR/transformer/<version>/ and DIR/upsampler/<version>/ (config.json + diffusion_pytorch_model.safetensors)
    python tests/tencent_sr.py run DIR INPUTS.pt OUT.pt --version 720p_sr_distilled [--i2v]
        loads them with Tencent's loader (`HunyuanVideo_1_5_Pipeline.load_sr_transformer_upsampler`), runs the
        pipeline to latents with the given inputs, writes {"hr_latents", "upsampled", "timesteps"}

What is given instead of computed (bound methods replaced on the pipeline; Tencent's code does all the rest): the
prompt's embeddings (encode_prompt, _prepare_byt5_embeddings), the initial noise (prepare_latents' `latents`), the
re-noising draw (`torch.randn_like` inside add_noise_to_lq: Tencent's draws from the unseeded global RNG); with --i2v
the reference image's latents and SigLIP tokens (get_image_condition_latents, _prepare_vision_states). Shims that
touch no numerics: a `torchvision` stub (imported at module level, used for image-to-video only), a parallel state
without sequence parallelism (the default builds a CUDA device mesh), `target_dtype` float32 (Tencent hard-codes
bfloat16, whose CPU rounding would dominate a 1e-4 comparison). Attention is Tencent's own ("flash" falls back to
its torch path: flex_attention, compiled).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import types

import torch


def shims(root: str) -> None:
    sys.path.insert(0, root)
    import diffusers.image_processor  # noqa: F401  (import what probes for torchvision before the stub goes in)
    import diffusers.models.modeling_utils  # noqa: F401
    import diffusers.pipelines.pipeline_utils  # noqa: F401
    import transformers.modeling_utils  # noqa: F401

    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except Exception:
            tv = types.ModuleType("torchvision")
            tv.transforms = types.ModuleType("torchvision.transforms")  # type: ignore[attr-defined]
            sys.modules["torchvision"] = tv
            sys.modules["torchvision.transforms"] = tv.transforms  # type: ignore[attr-defined]
    import hyvideo.commons.parallel_states as ps

    ps.__dict__["__parallel_dims"] = types.SimpleNamespace(
        sp_enabled=False, sp=1, sp_rank=0, sp_group=None, world_size=1, dp_enabled=False
    )


def transformer_config(ideal: str) -> dict:
    # the SR DiT: 98 input channels (32 noisy + 33 image condition + 33 low-resolution condition), MeanFlow
    return dict(
        patch_size=[1, 1, 1], in_channels=98, concat_condition=False, out_channels=32, hidden_size=32, heads_num=2,
        mlp_width_ratio=2.0, mlp_act_type="gelu_tanh", mm_double_blocks_depth=2, mm_single_blocks_depth=0,
        rope_dim_list=[4, 6, 6], qkv_bias=True, qk_norm=True, qk_norm_type="rms", guidance_embed=False,
        use_meanflow=True, text_projection="single_refiner", use_attention_mask=True, text_states_dim=16,
        text_states_dim_2=None, text_pool_type=None, rope_theta=256, attn_mode="torch", glyph_byT5_v2=True,
        vision_projection="linear", vision_states_dim=12, is_reshape_temporal_channels=False,
        use_cond_type_embedding=True, ideal_resolution=ideal, ideal_task=None,
    )  # fmt: skip


@torch.no_grad()
def randomize(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (Tencent zero-initialises the final layer, the condition channels, ...)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(module.named_parameters()):
        last = name.rsplit(".", 1)[-1]
        if last == "gamma" or (p.ndim == 1 and "norm" in name and last == "weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        elif p.ndim == 1:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        elif "embedding" in name:
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)


def fixture(args: argparse.Namespace) -> None:
    from hyvideo.models.transformers.hunyuanvideo_1_5_transformer import HunyuanVideo_1_5_DiffusionTransformer
    from hyvideo.models.transformers.modules.upsample import SRTo720pUpsampler, SRTo1080pUpsampler

    ideal = "720p" if args.version.startswith("720p") else "1080p"
    tr = HunyuanVideo_1_5_DiffusionTransformer(**transformer_config(ideal))
    randomize(tr, args.seed + 1)
    tr.save_pretrained(os.path.join(args.dir, "transformer", args.version))
    if ideal == "720p":
        up = SRTo720pUpsampler(in_channels=32, out_channels=32, hidden_channels=16, num_blocks=2, global_residual=False)
    else:
        up = SRTo1080pUpsampler(z_channels=32, out_channels=32, block_out_channels=(64, 32), num_res_blocks=1,
                                is_residual=False)  # fmt: skip
    randomize(up, args.seed + 2)
    up.save_pretrained(os.path.join(args.dir, "upsampler", args.version))


class _TextEncoder:
    max_length = 1000  # all the pipeline's __init__ reads of it


def run(args: argparse.Namespace) -> None:
    from hyvideo.commons import SR_PIPELINE_CONFIGS
    from hyvideo.models.autoencoders.hunyuanvideo_15_vae import AutoencoderKLConv3D
    from hyvideo.pipelines.hunyuan_video_pipeline import HunyuanVideo_1_5_Pipeline
    from hyvideo.pipelines.hunyuan_video_sr_pipeline import HunyuanVideo_1_5_SR_Pipeline
    from hyvideo.schedulers.scheduling_flow_match_discrete import FlowMatchDiscreteScheduler

    inputs = torch.load(args.inputs)
    transformer, upsampler = HunyuanVideo_1_5_Pipeline.load_sr_transformer_upsampler(
        args.dir, args.version, transformer_dtype=torch.float32, device=torch.device("cpu")
    )
    cfg = dict(SR_PIPELINE_CONFIGS[args.version])
    vae = AutoencoderKLConv3D(  # a small real VAE: only its config is read when stopping at latents
        in_channels=3, out_channels=3, latent_channels=32, block_out_channels=(64, 64, 64, 64, 64),
        layers_per_block=1, ffactor_spatial=16, ffactor_temporal=4, sample_size=256, sample_tsize=64,
        scaling_factor=1.03682, downsample_match_channel=True, upsample_match_channel=True,
    )  # fmt: skip
    pipe = HunyuanVideo_1_5_SR_Pipeline(
        vae=vae, text_encoder=_TextEncoder(), transformer=transformer,
        scheduler=FlowMatchDiscreteScheduler(shift=cfg["flow_shift"], reverse=True, solver="euler"),
        upsampler=upsampler, text_encoder_2=None, progress_bar_config={"disable": True},
        vision_num_semantic_tokens=8, vision_states_dim=12, glyph_byT5_v2=True, byt5_model=None,
        byt5_tokenizer=None, byt5_max_length=inputs["byt5_embeds"].shape[1], prompt_format=None,
        execution_device="cpu", vision_encoder=None, enable_offloading=False, **cfg,
    )  # fmt: skip
    pipe.target_dtype = torch.float32
    pe, pm = inputs["prompt_embeds"], inputs["prompt_mask"]
    pipe.encode_prompt = lambda *a, **k: (pe, None, pm, None)
    pipe._prepare_byt5_embeddings = lambda prompts, device: {
        "byt5_text_states": inputs["byt5_embeds"], "byt5_text_mask": inputs["byt5_mask"]}  # fmt: skip
    pipe.prepare_latents = functools.partial(pipe.prepare_latents, latents=inputs["init_noise"])
    seen: dict = {}
    add_noise = pipe.add_noise_to_lq

    def given_draw(lq: torch.Tensor, strength: float = 0.7) -> torch.Tensor:
        seen["upsampled"] = lq.clone()
        real = torch.randn_like
        torch.randn_like = lambda t, *a, **k: inputs["renoise"].to(t)
        try:
            return add_noise(lq, strength)
        finally:
            torch.randn_like = real

    pipe.add_noise_to_lq = given_draw
    reference = None
    if args.i2v:
        from PIL import Image

        reference = Image.new("RGB", (64, 64))
        pipe.get_image_condition_latents = lambda task, ref, h, w: inputs["image_latents"]
        pipe._prepare_vision_states = lambda img, res, latents, dev: inputs["vision_states"]
    calls = []
    forward = transformer.forward

    def traced(*a, **k):  # type: ignore[no-untyped-def]
        calls.append(float(a[1][0]))
        return forward(*a, **k)

    transformer.forward = traced
    with torch.no_grad():
        out = pipe(prompt="a tiny test", video_length=inputs["video_length"], lq_latents=inputs["lr_latents"],
                   reference_image=reference, output_type="latent", seed=0,
                   enable_vae_tile_parallelism=False)  # fmt: skip
    torch.save({"hr_latents": out.videos.float(), "upsampled": seen["upsampled"].float(), "timesteps": calls},
               args.out)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["fixture", "run"])
    p.add_argument("dir")
    p.add_argument("inputs", nargs="?")
    p.add_argument("out", nargs="?")
    p.add_argument("--version", default="720p_sr_distilled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--i2v", action="store_true")
    args = p.parse_args()
    shims(os.environ["HYV_TENCENT_HV15"])
    fixture(args) if args.cmd == "fixture" else run(args)


if __name__ == "__main__":
    main()
