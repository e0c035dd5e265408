"""HunyuanVideo 1.5's first frame (image-to-video), as diffusers' HunyuanVideo15ImageToVideoPipeline makes it:
- the video's size: the bucket of the model's target size nearest the image's aspect ratio;
- the image resized to cover that size and centre-cropped (PIL, Lanczos: the pipeline's image processor);
- SigLIP's last hidden state of it (through its feature extractor): `image_embeds` [1, 729, 1152];
- the VAE's latent of it as a one-frame video (the distribution's mode, times the scaling factor):
  `image_latents` [1, 32, 1, H/16, W/16]; the render puts it in latent frame 0 with a mask of ones there.
The VAE encodes without tiling here (as the pipeline does by default; tiling would change the latent above 256 px).
"""

from __future__ import annotations

from typing import Any

from render.families.hunyuan_video15 import buckets
from render.model.family import ImageEncoding
from render.model.ref import ModelRef


class HunyuanVideo15Images(ImageEncoding):
    components = ("image_encoder", "feature_extractor", "vae")

    def __init__(self, model: ModelRef, family: Any) -> None:
        self.model, self.family = model, family
        dit = family.config(model, "transformer")
        self.target = int(dit.get("target_size", 640))
        self.spatial = family.vae_factors(model)[2]

    def size(self, width: int, height: int) -> tuple[int, int]:
        return buckets.bucket(height, width, self.target, patch=self.spatial)

    def key_record(self, height: int, width: int) -> dict[str, Any]:
        return {"height": height, "width": width, "resize": "cover, centre crop, lanczos", "vae_tiling": False}

    def load(self, model: ModelRef, device: Any, dtype: Any, offload: str) -> dict[str, Any]:
        from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor
        from transformers import SiglipImageProcessor, SiglipVisionModel

        from render.model.offload import place

        encoder = SiglipVisionModel.from_pretrained(model.component("image_encoder"), dtype=dtype).eval()
        vae = self.family.load_vae(model, dtype).eval()
        vae.disable_tiling()
        hooks = [h for h in (place(encoder, offload, device), place(vae, offload, device)) if h is not None]
        return {
            "image_encoder": encoder,
            "feature_extractor": SiglipImageProcessor.from_pretrained(model.component("feature_extractor")),
            "processor": HunyuanVideo15ImageProcessor(vae_scale_factor=self.spatial, do_resize=False,
                                                      do_convert_rgb=True),  # fmt: skip
            "vae": vae,
            "device": device,
            "hooks": hooks,
        }

    def encode(self, encoders: Any, image: Any, height: int, width: int) -> dict[str, Any]:
        import torch

        e, device = encoders, encoders["device"]
        framed = e["processor"].resize(image, height=height, width=width, resize_mode="crop")
        with torch.inference_mode():
            pix = e["feature_extractor"].preprocess(images=framed, do_resize=True, return_tensors="pt",
                                                    do_convert_rgb=True)  # fmt: skip
            enc = e["image_encoder"]
            pix = pix.to(device=device, dtype=next(enc.parameters()).dtype)
            embeds = enc(**pix).last_hidden_state  # [1, 729, D_img]
            vae = e["vae"]
            px = e["processor"].preprocess(framed, height=height, width=width).to(device, dtype=vae.dtype)
            latents = vae.encode(px.unsqueeze(2)).latent_dist.mode() * vae.config.scaling_factor  # [1, C, 1, h, w]
        return {"image_embeds": embeds, "image_latents": latents}
