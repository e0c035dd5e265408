"""Turn what a model answered into a prompt, or say why it is not one.

Removed: reasoning blocks (`<think>…</think>`), a leading label ("Output:", "Rewritten prompt:", "input:"),
quotes around the whole text, surrounding whitespace. Never done: falling back to the user's prompt.
"""

from __future__ import annotations

import re

from rewrite.errors import ItemFailure

_REASONING = re.compile(r"<(think|thinking|reasoning|reflection)>.*?</\1>", re.IGNORECASE | re.DOTALL)
# Everything up to a closing tag whose opening tag was cut off (e.g. by the chat template).
_DANGLING_CLOSE = re.compile(r"^.*</(?:think|thinking|reasoning|reflection)>", re.IGNORECASE | re.DOTALL)
_LABEL = re.compile(
    r"^\s*[*_#>\s]*(?:output|rewritten(?:\s+(?:prompt|caption|description))?|caption|video\s+caption|"
    r"description|answer|result|prompt|input|final(?:\s+(?:answer|prompt|caption))?)\s*[*_]*\s*[:：]\s*[*_]*\s*",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "「": "」", "`": "`"}
# Letters past Latin Extended-B (U+024F) are not English; accented Latin letters are.
MAX_NON_LATIN_SHARE = 0.1


def _strip_quotes(text: str) -> str:
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


def clean_rewrite(raw: str) -> str:
    """The rewritten prompt in `raw`; raise ItemFailure with a reason when there is none."""
    text = _REASONING.sub("", raw)
    text = _DANGLING_CLOSE.sub("", text).strip()
    if re.match(r"^<(think|thinking|reasoning|reflection)>", text, re.IGNORECASE):
        raise ItemFailure("the answer is an unfinished reasoning block (raise --max-tokens)")
    for _ in range(3):  # e.g. `Output: "input: ..."`
        before = text
        text = _strip_quotes(_LABEL.sub("", text, count=1).strip())
        if text == before:
            break
    if not text:
        raise ItemFailure("the model returned an empty rewrite")
    letters = [c for c in text if c.isalpha()]
    if not letters:
        raise ItemFailure(f"the rewrite has no letters: {text[:40]!r}")
    non_latin = sum(1 for c in letters if ord(c) > 0x24F)
    if non_latin / len(letters) > MAX_NON_LATIN_SHARE:
        share = round(100 * non_latin / len(letters))
        raise ItemFailure(f"not English ({share}% of its letters are not Latin): {text[:40]!r}")
    return text
