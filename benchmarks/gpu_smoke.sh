#!/usr/bin/env bash
# GPU smoke check (issue 16 item 5), one command on one NVIDIA GPU machine that reaches package registries only:
#
#   bash benchmarks/gpu_smoke.sh [--set KEY=VALUE ...]
#
# 1. stops at once, exit 3, when no GPU is visible (nvidia-smi, then torch.cuda after the install);
# 2. installs what is missing into its own environment ($GPU_VENV, default .venv-gpu): torch (PyPI's CUDA build) and
#    this project with its `vllm` extra, pins from pyproject.toml (`benchmarks/gpu_smoke.py requirements` prints the
#    set); done again only when that set or setup.py changes; then `rerank-rl model prepare` (SmolLM2-135M-Instruct);
# 3. prints vLLM vs transformers generation tokens/s on the same RL prompts, runs a short GroupRank GRPO (the default
#    recipe, RL only, 8 steps, vLLM colocate rollouts, evaluation on the GPU through vLLM) and prints its s/step.
# --set values go to the GRPO run after the smoke check's own (benchmarks/gpu_smoke.py SETTINGS).
# Figures and the run folder go to runs/gpu-smoke-<timestamp>/. PYTHON picks the interpreter (Python 3.11).
set -euo pipefail

case "${1:-}" in
    -h | --help)
        sed -n '2,13p' "$0" | cut -c3-
        exit 0
        ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
unset DS_ACCELERATOR # the Makefile's `cpu` would keep DeepSpeed off the GPU
HELPER=benchmarks/gpu_smoke.py
VENV=${GPU_VENV:-.venv-gpu}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
if [ -z "$PYTHON" ]; then
    echo "gpu_smoke: no python3 on PATH; set PYTHON to a Python 3.11" >&2
    exit 2
fi

"$PYTHON" "$HELPER" check --no-torch # before anything is downloaded
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "gpu_smoke: $PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'), the" \
        "project needs 3.11 (pyproject.toml requires-python); set PYTHON to a Python 3.11" >&2
    exit 2
fi

started=$SECONDS
echo "== install into $VENV (skipped when up to date)"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$PYTHON" "$HELPER" requirements >"$VENV/requirements-gpu.txt"
if ! cmp -s "$VENV/requirements-gpu.txt" "$VENV/.gpu-smoke-installed"; then
    "$VENV/bin/pip" install -q -r "$VENV/requirements-gpu.txt"
    # the project itself without its own pins: its numpy pin is the one the set overrides
    "$VENV/bin/pip" install -q --no-deps -e .
    "$VENV/bin/python" -c 'import torch, vllm, trl, rerank_rl.rl.cli'
    cp "$VENV/requirements-gpu.txt" "$VENV/.gpu-smoke-installed"
fi
"$VENV/bin/rerank-rl" model prepare
"$VENV/bin/python" "$HELPER" check
installed=$SECONDS

OUT="runs/gpu-smoke-$(date +%Y%m%d-%H%M%S)"
echo "== generation throughput, vLLM vs transformers ($((SECONDS - installed)) s)"
"$VENV/bin/python" "$HELPER" throughput --out "$OUT"
echo "== GroupRank GRPO, vLLM colocate rollouts ($((SECONDS - installed)) s)"
"$VENV/bin/python" "$HELPER" grpo --out "$OUT" "$@"

echo "== summary ($OUT)"
"$VENV/bin/python" "$HELPER" summary --out "$OUT"
echo "install $((installed - started)) s, checks $((SECONDS - installed)) s"
if [ $((SECONDS - installed)) -gt 600 ]; then
    echo "gpu_smoke: the checks took over ten minutes" >&2
fi
