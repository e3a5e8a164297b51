#!/usr/bin/env bash
# The main job: set up what is missing, build the demo database (skipping what is built), start the app.
#   bash run.sh                      demo config, app on http://localhost:8501
#   bash run.sh configs/other.toml   any other config
set -euo pipefail
cd "$(dirname "$0")"
CONFIG=${1:-configs/demo.toml}
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
printf '\n==> building %s (each finished step is skipped on a rerun)\n' "$CONFIG"
.venv/bin/python -m and_engine build --config "$CONFIG"
printf '\n==> starting AND Explorer on http://localhost:%s (Ctrl+C stops it)\n' "${PORT:-8501}"
AND_EXPLORER_CONFIG="$CONFIG" exec .venv/bin/streamlit run app.py --server.port "${PORT:-8501}" --server.address localhost
