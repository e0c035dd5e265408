"""Train hyv's bundled demo model: a small HunyuanVideo (same diffusers classes, small configs) on synthetic shapes.

    python examples/train_demo_model.py --out render/demo_model --seed 0          # the shipped model (~20 min)
    python examples/train_demo_model.py --out /tmp/demo --quick                   # a smoke test (~2 min)

Phases (each checkpointed in --work, so an interrupted run resumes where it stopped):
1. word-level tokenizers for the caption vocabulary and the prompt template; random Llama and CLIP text encoders
   (frozen at their random init: the DiT's token refiner learns to read them);
2. the VAE (AutoencoderKLHunyuanVideo: 4x temporal, 8x spatial) with hand-built weights (hand_init_vae: latent
   cells are block means); --vae-steps N fine-tunes it on random 9-frame 32x32 crops (reconstruction + KL);
   its scaling_factor is set to 1 / std of the latents;
3. a fixed training set: videos of training scenes (held-out combinations excluded) -> VAE latents, and every caption
   -> embeddings through hyv's own encode path (template, crop_start, skip layer), so inference sees the same inputs;
4. the DiT (HunyuanVideoTransformer3DModel with guidance embedding, patch 1x2x2) with the flow-matching objective:
   x_t = (1 - s) x0 + s e, target v = e - x0, timestep = s * 1000, embedded guidance 6.0 * 1000, 10% caption
   dropout (the empty caption), latent cells covered by shapes weighted SHAPE_WEIGHT; EMA weights are shipped;
5. save in the diffusers layout (+ hyv.json defaults), then measure: VAE PSNR on held-out scenes, and the held-out
   pass rate of 50 captions generated through hyv's engine (render.engine.Engine.run) and judged by
   render.demo.evaluate; finally docs/demo_strip.png.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from render.demo.world import (  # noqa: E402
    COLOURS,
    MOTION_TEXT,
    SHAPES,
    caption,
    held_out_captions,
    random_scene,
    render,
)
from render.families.hunyuan_video.templates import IMAGE_TEMPLATE, VIDEO_TEMPLATE  # noqa: E402
from render.families.hunyuan_video.tiny import SPECIALS_CLIP, SPECIALS_LLAMA, wrap_tokenizer  # noqa: E402

FRAMES, SIZE = 17, 64  # the demo's video: 17 frames of 64x64 -> latents [8, 5, 8, 8]
TEXT_LEN = 24
LATENT_CH = 4  # RGB block means + one spare (constant) channel
GUIDANCE = 6.0
SHIFT = 5.0
STEPS = 20
TWO_PROB = 0.15  # share of two-shape scenes in training (the held-out captions have one shape)
DEFAULTS = {
    "frames": FRAMES,
    "height": SIZE,
    "width": SIZE,
    "steps": STEPS,
    "guidance": GUIDANCE,
    "shift": SHIFT,
    "fps": 8,
    "text_len": TEXT_LEN,
}

LLAMA_SPECIALS = [*SPECIALS_LLAMA, "<unk>"]  # the tiny models' special tokens, plus the word level's unknown
CLIP_SPECIALS = [*SPECIALS_CLIP, "<unk>"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- phase 1: tokenizers and text encoders


def caption_words() -> list[str]:
    words = {
        "a",
        "an",
        "the",
        "and",
        "on",
        "background",
        "moves",
        "to",
        "left",
        "right",
        "up",
        "down",
        "stays",
        "still",
        "does",
        "not",
        "move",
        "is",
        *COLOURS,
        *SHAPES,
        *(s + "s" for s in SHAPES),
    }
    for t in MOTION_TEXT.values():
        words.update(t.split())
    return sorted(words)


def role_normalizer() -> Any:
    """Lowercase, then "red background" -> "bgred background". The text encoders are frozen at a random init and the
    DiT reads their tokens almost as a bag of words, so "a blue circle ... on a black background" and "a black circle
    ... on a blue background" looked alike and the DiT confused the shape's colour with the background's; giving the
    background colour its own token removes the ambiguity (the caption text itself is unchanged)."""
    from tokenizers import Regex, normalizers

    steps = [normalizers.Lowercase()]
    steps += [
        normalizers.Replace(Regex(rf"\b{c}(\s+)background\b"), f"bg{c} background") for c in COLOURS
    ]
    return normalizers.Sequence(steps)


def build_word_tokenizer(specials: list[str], bos: str, eos: str | None, pad: str, max_len: int) -> Any:
    """A word-level tokenizer: every caption word and every word of the templates is one token (others: <unk>);
    the template's special tokens are single tokens; bos (and eos) added by the post-processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    pre = pre_tokenizers.Whitespace()
    vocab: dict[str, int] = {t: i for i, t in enumerate(specials)}
    texts = [VIDEO_TEMPLATE.replace("{}", ""), IMAGE_TEMPLATE.replace("{}", ""), " ".join(caption_words())]
    for text in texts:
        for s in specials:
            text = text.replace(s, " ")
        for w, _ in pre.pre_tokenize_str(text.lower()):
            vocab.setdefault(w, len(vocab))
    for c in COLOURS:  # a background colour is its own token ("bg-red"): see role_normalizer
        vocab.setdefault(f"bg{c}", len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = role_normalizer()
    tok.pre_tokenizer = pre
    tok.add_special_tokens(specials)
    return wrap_tokenizer(tok, bos, eos, pad, max_len, unk="<unk>")


def build_text_side(seed: int) -> dict[str, Any]:
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    tokenizer = build_word_tokenizer(LLAMA_SPECIALS, "<|begin_of_text|>", None, "<pad>", 1024)
    tokenizer_2 = build_word_tokenizer(CLIP_SPECIALS, "<|startoftext|>", "<|endoftext|>", "<|endoftext|>", 77)
    torch.manual_seed(seed + 2)
    text_encoder = LlamaModel(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            bos_token_id=tokenizer.bos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.convert_tokens_to_ids("<|eot_id|>"),
        )
    ).eval()
    with (
        torch.no_grad()
    ):  # unit-scale word vectors: the hidden state is mostly the word, a little its context
        text_encoder.embed_tokens.weight.normal_(0.0, 1.0)
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer_2),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            projection_dim=32,
            max_position_embeddings=77,
            bos_token_id=tokenizer_2.bos_token_id,
            eos_token_id=tokenizer_2.eos_token_id,
            pad_token_id=tokenizer_2.pad_token_id,
        )
    ).eval()
    return {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "tokenizer_2": tokenizer_2,
        "text_encoder_2": text_encoder_2,
    }


VAE_K, VAE_B = 100.0, 20.0  # the constant channels that keep GroupNorm linear; the SiLU operating point
VAE_SHARPEN = 0.5  # decoder unsharp mask at latent resolution (1.5 amplified the sampled latents' cell noise)
# The decoder's upsamplers: nearest, then this separable [1/4, 1/2, 1/4] blur (~ bilinear): shapes decode as smooth
# blobs instead of 8x8-pixel blocks. Measured on the 50 held-out latents of the shipped DiT: nearest without
# sharpening 48/50 pass, smoothed without sharpening 38/50 (thin triangles fade), smoothed with sharpening 0.5 50/50.
VAE_UP_TAPS = {0: 0.25, 1: 0.5, 2: 0.25}
# Per-channel latent offsets (latent = block mean + offset). They make the latent scale matter: decoding latents that
# were not divided by scaling_factor (or are 2x too large) shifts every colour, so the evaluator catches it.
LAT_OFFSET = (1.5, -1.5, 1.5, -1.5)


def _ident_conv(conv: Any, n: int, tw: dict[int, float], sw: dict[int, float]) -> None:
    """conv (nn.Conv3d): channel c -> channel c for c < n, with temporal taps tw and separable spatial taps sw."""
    w = torch.zeros_like(conv.weight)
    for c in range(n):
        for t, a in tw.items():
            for i, b in sw.items():
                for j, d in sw.items():
                    w[c, c, t, i, j] = a * b * d
    conv.weight.copy_(w)
    if conv.bias is not None:
        conv.bias.zero_()


@torch.no_grad()
def hand_init_vae(vae: Any, sharpen: float = VAE_SHARPEN, nsig: int = 3) -> Any:
    """Hand-built weights: a "thumbnail" autoencoder. Each latent cell is exactly the mean RGB of its causal pixel
    block (frame 0 alone, then 4 frames x 8 x 8); the decoder sharpens at latent resolution and upsamples (nearest,
    then a small blur: VAE_UP_TAPS).

    Channels 0..2 carry the signal s, 3..5 carry -s, 6 and 7 the constants +K and -K (conv_in biases). Every resnet is
    the identity (all its weights zero: residual only), downsamplers average 2x2 (x2 frames, causal), upsamplers are
    nearest + a blur conv. The two GroupNorms in the signal path (encoder and decoder conv_norm_out) see a group
    with mean exactly 0 and a variance dominated by K, so they are linear; their affine bias puts SiLU in its linear
    range and conv_out removes it. quant_conv / post_quant_conv are identities; the log-variance is -20."""
    enc, dec = vae.encoder, vae.decoder
    nz = 2 * nsig + 2
    for p in vae.parameters():
        p.zero_()
    for m in vae.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.weight.fill_(1.0)
    w = enc.conv_in.conv.weight
    for c in range(nsig):
        w[c, c, 2, 1, 1] = 1.0
        w[nsig + c, c, 2, 1, 1] = -1.0
    enc.conv_in.conv.bias[2 * nsig] = VAE_K
    enc.conv_in.conv.bias[2 * nsig + 1] = -VAE_K
    for blk in list(enc.down_blocks) + list(dec.up_blocks):
        for r in blk.resnets:
            if r.conv_shortcut is not None:
                _ident_conv(r.conv_shortcut.conv, nz, {0: 1.0}, {0: 1.0})
        for d in getattr(blk, "downsamplers", None) or []:
            time_stride = d.conv.conv.stride[0]
            _ident_conv(d.conv.conv, nz, {1: 0.5, 2: 0.5} if time_stride == 2 else {2: 1.0}, {1: 0.5, 2: 0.5})
        for u in getattr(blk, "upsamplers", None) or []:
            _ident_conv(u.conv.conv, nz, {2: 1.0}, VAE_UP_TAPS)

    def final(norm: Any, conv_out: Any) -> None:
        std0 = VAE_K * math.sqrt(2.0 / (norm.num_channels // norm.num_groups))
        norm.weight.zero_()
        norm.bias.zero_()
        for c in range(nsig):
            norm.weight[c] = std0
            norm.bias[c] = VAE_B
            conv_out.conv.weight[c, c, 2, 1, 1] = 1.0
            conv_out.conv.bias[c] = -VAE_B

    final(enc.conv_norm_out, enc.conv_out)
    lat = vae.config.latent_channels
    enc.conv_out.conv.bias[:lat] += torch.tensor(LAT_OFFSET[:lat])
    enc.conv_out.conv.bias[lat:] = -20.0
    vae.quant_conv.weight.copy_(torch.eye(2 * lat).view(2 * lat, 2 * lat, 1, 1, 1))
    vae.post_quant_conv.weight.copy_(torch.eye(lat).view(lat, lat, 1, 1, 1))
    w = dec.conv_in.conv.weight
    for c in range(nsig):
        for sgn, o in ((1.0, c), (-1.0, nsig + c)):
            w[o, c, 2, :, :] = -sharpen / 9.0 * sgn
            w[o, c, 2, 1, 1] += (1.0 + sharpen) * sgn
    for c in range(nsig):  # remove the offsets (the sharpening kernel sums to 1)
        dec.conv_in.conv.bias[c] = -LAT_OFFSET[c]
        dec.conv_in.conv.bias[nsig + c] = LAT_OFFSET[c]
    dec.conv_in.conv.bias[2 * nsig] = VAE_K
    dec.conv_in.conv.bias[2 * nsig + 1] = -VAE_K
    final(dec.conv_norm_out, dec.conv_out)
    return vae


def build_vae(seed: int) -> Any:
    from diffusers import AutoencoderKLHunyuanVideo

    torch.manual_seed(seed + 1)
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CH,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        norm_num_groups=2,
        scaling_factor=1.0,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
        mid_block_add_attention=False,
    )
    # Trained from PyTorch's default init this VAE reached 14.8 dB and shapes decoded as faint blurs; hand-built
    # weights give exact block means (see hand_init_vae) and a reconstruction the evaluator passes.
    return hand_init_vae(vae).eval()


def block_means(x: torch.Tensor) -> torch.Tensor:
    """What the hand-built encoder computes: [B, 3, 17, 64, 64] -> [B, LATENT_CH, 5, 8, 8] (+ LAT_OFFSET)."""
    import torch.nn.functional as F

    m = torch.cat([F.avg_pool3d(x[:, :, :1], (1, 8, 8)), F.avg_pool3d(x[:, :, 1:], (4, 8, 8))], 2)
    pad = torch.zeros(m.shape[0], LATENT_CH - 3, *m.shape[2:])
    return torch.cat([m, pad], 1) + torch.tensor(LAT_OFFSET[:LATENT_CH]).view(1, -1, 1, 1, 1)


def build_dit(seed: int, text_dim: int, pooled_dim: int, patch: int = 2) -> Any:
    from diffusers import HunyuanVideoTransformer3DModel

    torch.manual_seed(seed)
    return HunyuanVideoTransformer3DModel(
        in_channels=LATENT_CH,
        out_channels=LATENT_CH,
        num_attention_heads=2,
        attention_head_dim=32,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        patch_size=patch,
        patch_size_t=1,
        guidance_embeds=True,
        text_embed_dim=text_dim,
        pooled_projection_dim=pooled_dim,
        rope_axes_dim=(8, 12, 12),
    )


def save_model(directory: Path, text: dict[str, Any], vae: Any, dit: Any) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideoPipeline

    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe = HunyuanVideoPipeline(
        transformer=dit.eval(), vae=vae.eval(), scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT), **text
    )
    pipe.save_pretrained(str(tmp), safe_serialization=True)
    (tmp / "hyv.json").write_text(
        json.dumps(
            {
                "defaults": DEFAULTS,
                "about": "hyv's demo model: simple shapes on plain backgrounds (examples/train_demo_model.py)",
            },
            indent=2,
        )
        + "\n"
    )
    for f in tmp.rglob("*"):  # safetensors are written 0600: package data must be readable by every user
        f.chmod(0o755 if f.is_dir() else 0o644)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


# ---------------------------------------------------------------- phase 2: the VAE


def to_tensor(videos: list[np.ndarray]) -> torch.Tensor:
    """uint8 [F, H, W, 3] list -> float [B, 3, F, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.stack(videos)).float() / 127.5 - 1.0
    return x.permute(0, 4, 1, 2, 3).contiguous()


def vae_batch(
    rng: random.Random, n: int, frames: int, crop: int, focus: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(clips [n, 3, frames, crop, crop] in [-1, 1], shape mask [n, 1, frames, crop, crop]). focus: the crop is
    centred (with jitter) on the shapes, so every step sees edges and motion rather than mostly background."""
    out, masks = [], []
    for _ in range(n):
        scene = random_scene(rng, TWO_PROB)
        v = render(scene, FRAMES, SIZE, SIZE, rng)
        t0 = rng.randrange(0, FRAMES - frames + 1)
        clip = v[t0 : t0 + frames]
        mask = (clip != np.array(COLOURS[scene.background], np.uint8)).any(-1)  # [F, H, W]
        if focus and mask.any():
            ys, xs = np.nonzero(mask.any(0))
            cy, cx = int(ys.mean()) + rng.randint(-8, 8), int(xs.mean()) + rng.randint(-8, 8)
            y0 = min(max(0, cy - crop // 2), SIZE - crop)
            x0 = min(max(0, cx - crop // 2), SIZE - crop)
        else:
            y0, x0 = rng.randrange(0, SIZE - crop + 1), rng.randrange(0, SIZE - crop + 1)
        out.append(clip[:, y0 : y0 + crop, x0 : x0 + crop])
        masks.append(mask[None, :, y0 : y0 + crop, x0 : x0 + crop])
    return to_tensor(out), torch.from_numpy(np.stack(masks)).float()


def train_vae(vae: Any, steps: int, seed: int, batch: int, focus: bool, peak: float) -> None:
    """Reconstruction (MSE + L1, shape pixels weighted 5x when focus) + a small KL, decoded from the mean."""
    rng = random.Random(seed + (12 if focus else 10))
    torch.manual_seed(seed + 11)
    opt = torch.optim.Adam(vae.parameters(), lr=peak, betas=(0.9, 0.99))
    vae.train()
    t0 = time.time()
    for step in range(steps):
        lr = min(1.0, (step + 1) / 30) * (
            0.1 * peak + 0.9 * peak * 0.5 * (1 + math.cos(math.pi * step / steps))
        )
        for g in opt.param_groups:
            g["lr"] = lr
        x, m = vae_batch(rng, batch, 9, 32, focus)
        post = vae.encode(x).latent_dist
        y = vae.decode(post.mean).sample  # decoded from the mean, as the DiT's latents are the mean
        w = 1.0 + 4.0 * m if focus else torch.ones_like(m)  # [B, 1, F, h, w]
        rec = (w * ((y - x).pow(2) + 0.5 * (y - x).abs())).mean() / w.mean()
        kl = post.kl().mean() / post.mean[0].numel()  # per latent element
        loss = rec + 1e-4 * kl
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 10.0)
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            psnr = 10 * math.log10(4.0 / max(1e-10, (y - x).pow(2).mean().item()))
            log(
                f"vae step {step}/{steps} loss {loss.item():.4f} psnr(crop) {psnr:.1f} dB ({time.time() - t0:.0f} s)"
            )
    vae.eval()


def vae_psnr(vae: Any, seed: int, n: int) -> float:
    """Reconstruction PSNR (dB, pixels in [0, 1]) on full 17x64x64 videos of held-out scenes."""
    rng = random.Random(seed + 20)
    mses = []
    with torch.inference_mode():
        for _ in range(n):
            x = to_tensor([render(random_scene(rng, held_out=True), FRAMES, SIZE, SIZE, rng)])
            y = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
            mses.append(((y - x) / 2).pow(2).mean().item())
    return 10 * math.log10(1.0 / float(np.mean(mses)))


# ---------------------------------------------------------------- phase 3: the training set


def encode_captions(model_dir: Path, captions: list[str]) -> dict[str, torch.Tensor]:
    """Every caption through hyv's encode path: prompt_embeds [N, L, D], mask [N, L], pooled [N, P]."""
    from render.core.settings import EncodeSettings
    from render.engine import Engine
    from render.model.ref import ModelRef

    engine = Engine(ModelRef(model_dir, "demo"))
    stage, settings = engine.encode_stage(), EncodeSettings(text_len=TEXT_LEN)
    template = stage.template(FRAMES)
    parts: list[dict[str, Any]] = []
    for i in range(0, len(captions), 256):
        tensors, truncated = stage.encode(captions[i : i + 256], template, settings)
        if any(truncated):
            raise SystemExit("a caption is longer than text_len tokens")
        parts.append(tensors)
    engine.close()
    return {k: torch.cat([p[k] for p in parts]).clone() for k in parts[0]}


def build_dataset(vae: Any, model_dir: Path, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed + 30)
    scenes = [random_scene(rng, TWO_PROB) for _ in range(n)]
    caps = sorted({caption(s) for s in scenes} | {""})
    index = {c: i for i, c in enumerate(caps)}
    log(f"dataset: {n} videos, {len(caps) - 1} distinct captions")
    emb = encode_captions(model_dir, caps)
    lat = []
    t0 = time.time()
    with torch.inference_mode():
        for i in range(0, n, 8):
            x = to_tensor([render(s, FRAMES, SIZE, SIZE, rng) for s in scenes[i : i + 8]])
            if i == 0:  # the encoder is exactly the block mean: check once, then use the fast path
                z = vae.encode(x).latent_dist.mean
                err = float((z - block_means(x)).abs().max())
                if err > 1e-3:
                    raise SystemExit(f"VAE latents differ from block means by {err}")
                lat.append(z)
            else:
                lat.append(block_means(x))
            if i % 1000 == 0:
                log(f"encoded {i}/{n} videos ({time.time() - t0:.0f} s)")
    latents = torch.cat(lat)  # [N, C, 5, 8, 8], not yet scaled
    return {
        "latents": latents,
        "cap_idx": torch.tensor([index[caption(s)] for s in scenes]),
        "captions": caps,
        "emb": emb,
        "empty": index[""],
    }


# ---------------------------------------------------------------- phase 4: the DiT


def shifted(sigma: torch.Tensor, s: float) -> torch.Tensor:
    return s * sigma / (1 + (s - 1) * sigma)


SHAPE_WEIGHT = 10.0  # loss weight of latent cells the shapes cover (they are ~6% of the cells; the rest is background)
DIT_LR = 1.5e-3
DIT_BATCH = 32


def shape_weights(x: torch.Tensor, weight: float = SHAPE_WEIGHT) -> torch.Tensor:
    """Scaled latents [N, C, T, H, W] -> loss weights [N, 1, T, H, W]: `weight` on cells that differ from the video's
    background (its per-channel median cell), 1 elsewhere. With uniform weights the DiT learned the background in a
    few hundred steps and the shapes hardly at all (1/25 held-out captions after 3,000 steps); weighted, 24/25."""
    bg = x.flatten(2).median(2).values[:, :, None, None, None]  # [N, C, 1, 1, 1]
    shape = (x - bg).abs().amax(1, keepdim=True) > 0.15  # [N, 1, T, H, W]
    return 1.0 + (weight - 1.0) * shape.float()


def train_dit(dit: Any, data: dict[str, Any], sf: float, steps: int, batch: int, seed: int) -> Any:
    gen = torch.Generator().manual_seed(seed + 40)
    torch.manual_seed(seed + 41)
    x_all = data["latents"] * sf  # [N, C, 5, 8, 8]
    w_all = shape_weights(x_all)  # [N, 1, 5, 8, 8]
    emb = data["emb"]
    n = x_all.shape[0]
    opt = torch.optim.AdamW(dit.parameters(), lr=DIT_LR, weight_decay=0.0, betas=(0.9, 0.99))
    ema = copy.deepcopy(dit).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    dit.train()
    t0 = time.time()
    warm = max(1, steps // 20)
    for step in range(steps):
        lr = DIT_LR * min(1.0, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, n, (batch,), generator=gen)
        x0 = x_all[idx]
        ci = data["cap_idx"][idx].clone()
        drop = torch.rand(batch, generator=gen) < 0.1
        ci[drop] = data["empty"]
        # sigma: half uniform, half logit-normal shifted like the sampling schedule
        u = torch.rand(batch, generator=gen)
        ln = shifted(torch.sigmoid(torch.randn(batch, generator=gen)), SHIFT)
        sigma = torch.where(torch.rand(batch, generator=gen) < 0.5, u, ln).clamp(1e-3, 1.0)
        eps = torch.randn(x0.shape, generator=gen)
        s = sigma.view(-1, 1, 1, 1, 1)
        xt = (1 - s) * x0 + s * eps
        v = dit(
            hidden_states=xt,
            timestep=sigma * 1000.0,
            encoder_hidden_states=emb["prompt_embeds"][ci],
            encoder_attention_mask=emb["prompt_attention_mask"][ci],
            pooled_projections=emb["pooled_prompt_embeds"][ci],
            guidance=torch.full((batch,), GUIDANCE * 1000.0),
            return_dict=False,
        )[0]
        w = w_all[idx]
        loss = (w * (v - (eps - x0)).pow(2)).mean() / w.mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        opt.step()
        decay = min(0.995, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), dit.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        if step % 50 == 0 or step == steps - 1:
            log(f"dit step {step}/{steps} loss {loss.item():.4f} lr {lr:.2e} ({time.time() - t0:.0f} s)")
    return ema


# ---------------------------------------------------------------- phase 5: evaluation


def generate(model_dir: Path, prompts: list[str], workdir: Path, seed: int = 42) -> list[Path | None]:
    """Videos through hyv's own engine (the code `hyv run` calls) at the demo's defaults."""
    from render.core.resolve import Flags
    from render.engine import Engine
    from render.model.ref import ModelRef

    engine = Engine(ModelRef(model_dir, str(model_dir)))
    flags = Flags(
        frames=FRAMES, height=SIZE, width=SIZE, steps=STEPS, guidance=GUIDANCE, shift=SHIFT, seed=seed,
        text_len=TEXT_LEN, fps=8,
    )  # fmt: skip
    report = engine.run(prompts, engine.settings(flags), workdir=workdir, use_cache=False)
    return [o.video for o in report.outcomes]


def held_out_pass_rate(model_dir: Path, workdir: Path) -> tuple[int, int, list[str]]:
    from render.demo.evaluate import evaluate_video

    caps = held_out_captions()
    videos = generate(model_dir, caps, workdir)
    lines, ok = [], 0
    for c, v in zip(caps, videos, strict=True):
        res = evaluate_video(v, c) if v is not None else None
        good = res is not None and res.passed
        ok += good
        lines.append(f"{'PASS' if good else 'FAIL'}  {c}  ({res.reason if res else 'no video'})")
    return ok, len(caps), lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "render" / "demo_model")
    ap.add_argument("--work", type=Path, default=None, help="checkpoints of each phase (default: OUT.work)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a few steps of everything (smoke test)")
    ap.add_argument("--vae-steps", type=int, default=None, help="fine-tune the hand-built VAE (default 0)")
    ap.add_argument("--dit-steps", type=int, default=None)
    ap.add_argument("--dit-patch", type=int, default=2, help="the DiT's spatial patch size (1: one token a cell)")
    ap.add_argument("--videos", type=int, default=None, help="training videos for the DiT")
    ap.add_argument("--strip", type=Path, default=REPO / "docs" / "demo_strip.png")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 is fastest on a shared machine: idle OpenMP threads stall the others)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    vae_steps = args.vae_steps or 0
    vae_steps_b = vae_steps and (10 if args.quick else 700)
    dit_steps = args.dit_steps or (10 if args.quick else 3000)
    n_videos = args.videos or (32 if args.quick else 3000)
    work: Path = args.work or args.out.with_name(args.out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    timings: dict[str, float] = {}

    # 1. text side (deterministic from the seed; rebuilt every run, cheap)
    t = time.time()
    text = build_text_side(args.seed)
    stage_dir = work / "model"
    vae = build_vae(args.seed)
    text_dim, pooled_dim = text["text_encoder"].config.hidden_size, text["text_encoder_2"].config.hidden_size
    dit = build_dit(args.seed, text_dim, pooled_dim, args.dit_patch)
    if not (stage_dir / "model_index.json").is_file():
        save_model(stage_dir, text, vae, dit)
    timings["text encoders"] = time.time() - t

    # 2. VAE
    t = time.time()
    # hand-built (build_vae); optional fine-tuning: a: random crops, b: crops on the shapes, shape pixels weighted
    if vae_steps > 0:
        for part, steps, focus, peak in (("", vae_steps, False, 1e-3), ("b", vae_steps_b, True, 5e-4)):
            vae_ckpt = work / f"vae-{vae_steps}{'-' + part + str(steps) if part else ''}.pt"
            if vae_ckpt.is_file():
                vae.load_state_dict(torch.load(vae_ckpt))
                log(f"VAE loaded from {vae_ckpt}")
            else:
                train_vae(vae, steps, args.seed, batch=3, focus=focus, peak=peak)
                torch.save(vae.state_dict(), vae_ckpt)
    vae.eval()
    psnr = vae_psnr(vae, args.seed, 4 if args.quick else 16)
    timings["vae"] = time.time() - t
    log(f"VAE PSNR on held-out scenes: {psnr:.2f} dB")

    # 3. dataset
    t = time.time()
    data_ckpt = work / f"data-{vae_steps}-{vae_steps_b}-{n_videos}.pt"
    if data_ckpt.is_file():
        data = torch.load(data_ckpt)
    else:
        data = build_dataset(vae, stage_dir, n_videos, args.seed)
        torch.save(data, data_ckpt)
    std = float(data["latents"].std())
    sf = 1.0 / std
    vae.register_to_config(scaling_factor=round(sf, 6))
    log(f"latent std {std:.4f} -> scaling_factor {sf:.6f}")
    timings["dataset"] = time.time() - t

    # 4. DiT
    t = time.time()
    dit_ckpt = work / f"dit-{vae_steps}-{vae_steps_b}-{n_videos}-{dit_steps}-p{args.dit_patch}.pt"
    if dit_ckpt.is_file():
        dit.load_state_dict(torch.load(dit_ckpt))
    else:
        dit = train_dit(dit, data, round(sf, 6), dit_steps, batch=DIT_BATCH, seed=args.seed)
        torch.save(dit.state_dict(), dit_ckpt)
    timings["dit"] = time.time() - t

    # 5. save + measure
    save_model(args.out, text, vae, dit)
    log(
        f"saved {args.out} ({sum(p.stat().st_size for p in args.out.rglob('*') if p.is_file()) / 1e6:.1f} MB)"
    )
    train_time = time.time() - t_all
    summary: dict[str, Any] = {
        "seed": args.seed,
        "vae_psnr_db": round(psnr, 2),
        "train_seconds": round(train_time),
        "timings": {k: round(v) for k, v in timings.items()},
        "scaling_factor": round(sf, 6),
    }
    if not args.skip_eval:
        t = time.time()
        ok, total, lines = held_out_pass_rate(args.out, work / "eval")
        print("\n".join(lines))
        summary["held_out_pass"] = f"{ok}/{total}"
        summary["eval_seconds"] = round(time.time() - t)
        from render.demo.strip import write_strip

        strip_prompt = "a blue circle moves to the left on a yellow background"
        video = generate(args.out, [strip_prompt], work / "strip")[0]
        if video is not None and not args.quick:
            write_strip(video, args.strip, strip_prompt)
            log(f"wrote {args.strip}")
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    log(json.dumps(summary))


if __name__ == "__main__":
    main()
