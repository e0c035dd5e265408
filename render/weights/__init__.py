"""Weight formats behind `render.loading` (the one place that loads weights): the layouts a model directory can be
in (`layout`), Tencent's original checkpoints and their conversion (`original`), reading and checking weight files
(`files`, `check`), FP8 (`fp8`), GGUF (`gguf_dit`), LoRA (`lora`), the DiT's weight variant (`variant`), and the
admin tools that write weights (`convert`, `text_encoder`, `download`)."""
