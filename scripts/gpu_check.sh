#!/usr/bin/env bash
# The GPU check: tiny random models of the real classes through the GPU paths, per-step times and GPU memory.
#   bash scripts/gpu_check.sh                  on a CUDA machine: the tiny build (vllm if installed, else the
#                                              transformers LLM backend, which it says)
#   bash scripts/gpu_check.sh --scale          AST-base size, random weights, 2,000 generated clips: timings
#   bash scripts/gpu_check.sh --cpu [--scale]  the same code paths on the CPU (a dry run; --scale: 4 clips)
#   bash scripts/gpu_check.sh --fetch-wheels   on a machine with network: fill scripts/gpu_check/wheels/ with the
#                                              small wheels a machine without network may lack (duckdb, soundfile,
#                                              ...; scripts/gpu_check/wheels.txt), for GPU_PY (default 3.11)
# On a machine without network, modules that do not import are installed from scripts/gpu_check/wheels/ into a
# temporary folder (nothing in the machine's own Python changes). Finishes in a few minutes (limit: 9 min).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
WHEELS=${GPU_CHECK_WHEELS:-scripts/gpu_check/wheels}
LIST=scripts/gpu_check/wheels.txt

if [ "${1:-}" = "--fetch-wheels" ]; then
  GPU_PY=${GPU_PY:-3.11}
  mkdir -p "$WHEELS"
  specs=$(grep -v '^#' "$LIST" | cut -d: -f2 | tr ',' '\n' | sort -u)
  # shellcheck disable=SC2086
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$GPU_PY" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" $specs
  size=$(du -sm "$WHEELS" | cut -f1)
  ls -1 "$WHEELS"
  echo "wheels: ${size} MiB in $WHEELS (Python $GPU_PY)"
  [ "$size" -le 62 ] || { echo "error: over the 64 MiB a run may carry" >&2; exit 1; }
  exit 0
fi

SITE=$(mktemp -d /tmp/and-gpu-check-site.XXXXXX)
trap 'rm -rf "$SITE"' EXIT
missing=()
while IFS=: read -r module wheels; do
  case "$module" in ''|'#'*) continue ;; esac
  if ! "$PY" -c "import $module" >/dev/null 2>&1; then
    missing+=("$module")
    IFS=, read -r -a specs <<< "$wheels"
    for spec in "${specs[@]}"; do
      name=${spec%%==*}; file=$(ls "$WHEELS"/"${name//-/_}"-"${spec#*==}"-*.whl 2>/dev/null | head -1 || true)
      if [ -z "$file" ]; then
        echo "error: $module is not installed and $spec is not in $WHEELS (bash scripts/gpu_check.sh" \
             "--fetch-wheels on a machine with network, then carry that folder)" >&2
        exit 1
      fi
      "$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" "$file"
    done
  fi
done < "$LIST"
[ ${#missing[@]} -gt 0 ] && echo "installed from $WHEELS for this run: ${missing[*]}"
for module in numpy scipy pyarrow torch transformers; do
  "$PY" -c "import $module" 2>/dev/null || { echo "error: $module is needed and not installed" >&2; exit 1; }
done
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec timeout 540 "$PY" scripts/gpu_check/check.py "$@"
