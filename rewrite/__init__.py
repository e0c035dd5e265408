"""Prompt rewriting for HunyuanVideo through vLLM (an OpenAI-compatible server or in-process).

The public API is in `rewrite.api` (rewrite_batch, write_jsonl) and `rewrite.settings`. Importing this
package is cheap: vLLM is imported only by the in-process backend, when it runs.
"""

__version__ = "0.1.0"
