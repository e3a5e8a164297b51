#!/usr/bin/env bash
# The main job: set up what is missing, build the core steps, start the app while the analyses build on.
#   bash run.sh                      demo config, app on http://localhost:8501
#   bash run.sh configs/other.toml   any other config
# The core steps (clips, models, activations, captions, summaries, Modules A-C) are built first; then the
# analyses (pruning, feature importance, ...) continue in a background process and the app shows what is
# finished and what is running. A rerun skips every finished step; a build already running is left alone.
set -euo pipefail
cd "$(dirname "$0")"
CONFIG=${1:-configs/demo.toml}
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
printf '\n==> building the core steps of %s (each finished step is skipped on a rerun)\n' "$CONFIG"
rc=0
.venv/bin/python -m and_engine build --config "$CONFIG" --until dissect --no-wait || rc=$?
if [ "$rc" -eq 0 ]; then
  printf '\n==> the analyses continue in the background; the app shows their progress\n'
  .venv/bin/python -m and_engine build --config "$CONFIG" --background --no-wait
elif [ "$rc" -eq 75 ]; then
  printf '\n==> a build of this database is already running; the app shows its progress\n'
else
  exit "$rc"
fi
printf '\n==> starting AND Explorer on http://localhost:%s (Ctrl+C stops the app, not the background build)\n' \
  "${PORT:-8501}"
AND_EXPLORER_CONFIG="$CONFIG" exec .venv/bin/streamlit run app.py --server.port "${PORT:-8501}" --server.address localhost
