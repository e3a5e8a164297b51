#!/usr/bin/env bash
# Set up what is missing (packages, browser-test tools) and run lint + the whole test suite.
#   bash test.sh            everything
#   bash test.sh -k name    extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh --test
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
printf '\n==> lint (ruff)\n'
.venv/bin/ruff check .
printf '\n==> tests (pytest)\n'
exec .venv/bin/python -m pytest "$@"
