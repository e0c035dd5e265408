"""HunyuanVideo (2024): the family plug-ins (`family.HunyuanVideo`; `i2v.HunyuanVideoI2V`, its image-to-video model)
and everything only they know: the original layout, checkpoint conversion, templates, text encoding, attention
processor, context-parallel plan, tiny models."""

from render.families.hunyuan_video.family import HunyuanVideo
from render.families.hunyuan_video.i2v import HunyuanVideoI2V

HUNYUAN_VIDEO = HunyuanVideo()
HUNYUAN_VIDEO_I2V = HunyuanVideoI2V()

__all__ = ["HUNYUAN_VIDEO", "HUNYUAN_VIDEO_I2V", "HunyuanVideo", "HunyuanVideoI2V"]
