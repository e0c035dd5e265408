"""HunyuanVideo 1.5's super-resolution pass (Tencent's `HunyuanVideo_1_5_SR_Pipeline`), as the inputs of hyv's
sampling loop (render.sampling.sample.denoise):

    x_lr [1, C, T, h, w] (the base video's latents, scaled as the DiT leaves them)
      -> bilinear resize per frame to the upscaled latent size (H, W), in float32
      -> the upsampler (float32)                                   -> up [1, C, T, H, W], cast to the DiT's dtype
      -> re-noised: (1 - 0.7) up + 0.7 eps                         -> the low-resolution condition
    condition = [image latents (zeros: text-to-video), image mask (zeros), re-noised up, ones]   [1, 2C + 2, T, H, W]
    the DiT's input each step: [x_t, condition]  (3C + 2 channels), the low-resolution part (re-noised up and its
    ones) zeroed from the first step whose timestep is below 700 on
    x starts from pure noise at t = 1000; Tencent's schedule: sigmas = linspace(1, 0, N + 1) in float32, shifted
    2s / (1 + s), timesteps 1000 sigma; Euler steps in float32; timestep_r = the next timestep (0 at the last); no
    CFG: one forward a step on the prompt's conditioning.

The random draws, from the item's seed (Tencent draws the re-noising from the unseeded global RNG of the GPU, so
its SR is not reproducible run to run; hyv's is): one CPU generator seeded with the seed draws the initial noise
[1, C, T, H, W] in the DiT's dtype (as Tencent's, a fresh generator with the base run's seed, bf16 on a GPU), then
the re-noising draw eps of the same shape and dtype, the generator carried on (a seed + 1 would be the next video's
initial noise).

Image-to-video: Tencent puts the reference image's VAE latents in frame 0 of the image condition (mask 1 there) and
gives the DiT its SigLIP tokens: both come from `image`, the first frame's image artifact framed for the upscaled
size (render.run.upscaling makes it); without it the pass is text-to-video.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from render.families.hunyuan_video15.sr_models import NOISE
from render.model.family import Family, StepInputs, UpscaleInputs, Upscaler

RENOISE = (
    "one CPU generator seeded with the video's seed draws the initial noise, then the re-noising draw (same shape "
    "and dtype)"
)


class Schedule:
    """Tencent's FlowMatchDiscreteScheduler(shift, reverse=True, solver="euler") as the SR pipeline uses it (float32
    sigmas computed in torch; diffusers' computes them in float64: 1e-6 apart), with the three things hyv's loop
    calls: `timesteps`, `sigmas`, `set_begin_index`, `step`."""

    def __init__(self, steps: int, shift: float, device: Any) -> None:
        import torch

        s = torch.linspace(1, 0, steps + 1)  # [N + 1] float32, on the CPU as Tencent's
        self.sigmas = shift * s / (1 + (shift - 1) * s)
        self.timesteps = (self.sigmas[:-1] * 1000).to(dtype=torch.float32, device=device)  # [N]
        self._i = 0

    def set_begin_index(self, i: int) -> None:
        self._i = i

    def step(self, v: Any, t: Any, x: Any, return_dict: bool = False) -> tuple[Any]:
        """x_{i+1} = x_i + v (sigma_{i+1} - sigma_i), in float32 (and kept in float32, as Tencent's)."""
        import torch

        dt = self.sigmas[self._i + 1] - self.sigmas[self._i]
        self._i += 1
        return (x.to(torch.float32) + v.float() * dt,)


def upscale_inputs(
    family: Family,  # HunyuanVideo 1.5's (its conditioning)
    up: Upscaler,
    cond: Mapping[str, Any],
    lr_latents: Any,
    upsampler: Any,
    hr_latent: tuple[int, int],
    seed: int,
    trim: bool,
    device: Any,
    dtype: Any,
    image: Mapping[str, Any] | None = None,
) -> UpscaleInputs:
    import torch
    import torch.nn.functional as F

    from render.families.hunyuan_video15.inputs import step_inputs

    image_latents = image["image_latents"] if image is not None else None  # [1, C, 1, H, W] at the upscaled size
    b, c, t, h, w = lr_latents.shape
    big, small = hr_latent
    shape = (b, c, t, big, small)
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(shape, generator=gen, dtype=dtype).to(device)  # the initial latents, t = 1000
    eps = torch.randn(shape, generator=gen, dtype=dtype).to(device)  # the re-noising draw
    with torch.inference_mode():
        x = lr_latents.to(device=device, dtype=torch.float32)
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # frames apart: [B T, C, h, w]
        x = F.interpolate(x, size=(big, small), mode="bilinear", align_corners=False)
        x = x.reshape(b, t, c, big, small).permute(0, 2, 1, 3, 4)  # [B, C, T, H, W]
        lifted = upsampler(x).to(dtype)
        strength = float(up.facts.get("noise", NOISE))
        k = (torch.tensor([1000.0], device=device) * strength / 1000.0).reshape(1, 1, 1, 1, 1)
        noised = (1 - k) * lifted + k * eps  # float32 (k is): Tencent's add_noise_to_lq
        first = torch.zeros(shape, device=device)
        first_mask = torch.zeros((b, 1, t, big, small), device=device)
        if image_latents is not None:  # image-to-video: the reference image's latents in frame 0
            first[:, :, :1] = image_latents.to(device=device, dtype=torch.float32)
            first_mask[:, :, 0] = 1
        ones = torch.ones((b, 1, t, big, small), device=device)
        condition = torch.cat([first, first_mask, noised, ones], dim=1)  # [B, 2C + 2, T, H, W]
        dropped = condition.clone()
        dropped[:, c + 1 :] = 0  # the low-resolution condition and its mask gone, the image's kept
    sched = Schedule(up.steps, up.shift, device)
    gate = 1000 * strength

    def hidden_at(i: int, x_in: Any, timesteps: Any) -> Any:  # [B, C, T, H, W] -> [B, 3C + 2, T, H, W]
        below = bool((timesteps[: i + 1] < gate).any())  # Tencent's `if t < 700: condition = zero_lq` (it stays)
        return torch.cat([x_in, (dropped if below else condition).to(x_in)], dim=1)

    base = step_inputs(family, cond, None, trim, up.config, image)  # the conditioning, timestep_r (MeanFlow)
    inputs = StepInputs(base.cond, None, per_step=base.per_step, hidden_at=hidden_at)
    record = {
        "renoise": RENOISE,
        "noise_strength": strength,
        "lr_condition_until": f"t >= {gate:g}",
        "image_condition": image_latents is not None,
        "upsampled_from": [h, w],
    }
    return UpscaleInputs(noise, inputs, sched, record)
