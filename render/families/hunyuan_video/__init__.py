"""HunyuanVideo (2024): the family plug-in (`family.HunyuanVideo`) and everything only it knows: its original layout,
checkpoint conversion, templates, text encoding, attention processor, context-parallel plan, tiny models."""

from render.families.hunyuan_video.family import HunyuanVideo

HUNYUAN_VIDEO = HunyuanVideo()

__all__ = ["HUNYUAN_VIDEO", "HunyuanVideo"]
