"""HunyuanVideo 1.5 (Nov 2025): the family plug-in (`family.HunyuanVideo15`) and everything only it knows: its chat
template and glyph encoding, its buckets, its attention processor without the dense mask, its DiT inputs (65
channels, timestep_r), tiny models, its original layout and conversion; its super-resolution (sr: the pass,
sr_models: where its models are, loading, conversion, tiny ones; upsampler: hyv's module; keys: Tencent's DiT names ->
diffusers')."""

from render.families.hunyuan_video15.family import HunyuanVideo15

HUNYUAN_VIDEO_15 = HunyuanVideo15()

__all__ = ["HUNYUAN_VIDEO_15", "HunyuanVideo15"]
