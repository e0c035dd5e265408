"""Write a tiny random Llama and a locally trained tokenizer with a chat template: no hub, no network.

    python tests/rewrite/tiny_model.py OUT_DIR

Run with the vLLM venv's python, so the files are written by the transformers that vLLM will read them with.
The tokenizer is a byte-level BPE trained on the packaged instructions and a few sentences, WITHOUT the
full byte alphabet: every token is ASCII text, so the random model's gibberish is ASCII and passes the
"English" check. It has no end-of-sequence token, so a generation always runs to max_tokens and is never
empty by chance.
"""

from __future__ import annotations

import string
import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIALS = ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
SENTENCES = [
    "A cat sits on a sunny windowsill and watches the birds outside.",
    "A red car drives along a coastal road at sunset, the camera tracking beside it.",
    "Close-up of rain drops on a leaf, soft light, shallow depth of field.",
    "An astronaut walks slowly across a dusty plain under a black sky.",
    "Wide shot of a busy market at dawn, warm light, people carrying baskets.",
    string.ascii_letters + string.digits + string.punctuation + " ",
]


def main(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    repo = Path(__file__).resolve().parents[2]
    corpus = SENTENCES + [p.read_text() for p in sorted((repo / "rewrite" / "instructions").glob("*.txt"))]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus * 4, trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIALS))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, additional_special_tokens=SPECIALS)
    hf_tok.chat_template = CHAT_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    hf_tok.save_pretrained(out)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=128,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim 64: vLLM's CPU attention has no kernel for 16
        num_key_value_heads=1,
        max_position_embeddings=2048,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.bos_token_id = None
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = None
    model.save_pretrained(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
