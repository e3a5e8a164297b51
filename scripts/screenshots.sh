#!/usr/bin/env bash
# Screenshots of every page of AND Explorer for the docs (docs/screenshots/ by default).
#   AND_EXPLORER_DB=/tmp/copy.duckdb scripts/screenshots.sh [OUT_DIR] [PORT]
# Serves the app on $AND_EXPLORER_DB (use a copy: the Human evaluation shot saves ratings, to a temporary ratings
# database), drives Chromium (/usr/bin/chromium, playwright-core from tests/browser: see docs/app.md's browser
# setup) through scripts/screenshots.mjs and stops the server. NEURON=model/layer/neuron, UPLOAD_CLIP=file and
# ONLY=overview,neuron,... choose what is shown and taken.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AND_EXPLORER_DB:?set AND_EXPLORER_DB to the results database to show (a copy)}"
OUT=${1:-docs/screenshots}
PORT=${2:-8799}
PY=${PYTHON:-.venv/bin/python}
TMP=$(mktemp -d)
LOG=${SERVER_LOG:-$TMP/server.log}
export AND_EXPLORER_RATINGS=${AND_EXPLORER_RATINGS:-$TMP/ratings.duckdb} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
setsid "$PY" tests/browser/serve_app.py "$PORT" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill -- -"$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$PORT/_stcore/health" >/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 1
done
BASE_URL="http://127.0.0.1:$PORT" OUT_DIR="$OUT" USER_DATA_DIR="$TMP/chrome" node scripts/screenshots.mjs \
  || { tail -n 40 "$LOG"; exit 1; }
