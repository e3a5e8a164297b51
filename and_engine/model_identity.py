"""What identifies a model on disk, for cache keys and fingerprints: its content, not only its name.

``model_identity("/models/v2/ggml-model-Q4_K_M.gguf")`` -> ``"ggml-model-Q4_K_M.gguf#<digest>"``, where the
digest covers every weight / config file's relative path and the SHA-256 of its whole content, so weights
edited anywhere (the middle included) or replaced in place change the identity. A string that is not a local
path (a hub id such as ``meta-llama/Llama-2-13b-chat-hf``) is returned whole.

Hashing a whole multi-GB file takes seconds, so each file's digest is cached by (path, size, mtime, inode,
ctime) — in this process and in ``model_identity.json`` under ``$AND_ENGINE_CACHE`` (default
``$XDG_CACHE_HOME/and_engine`` or ``~/.cache/and_engine``): a file is read once per version. Any write to a
file changes its ctime (which no user command can set back), so an edit is never served a stale digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from and_engine.cache_files import write_text_atomic

CHUNK = 1 << 20
MODEL_FILE_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".onnx", ".json", ".model", ".txt", ".ckpt")
_MEMO: dict[str, str] = {}  # stat key -> digest, this process
_LOCK = threading.Lock()


def cache_path() -> Path:
    """Where file digests are kept between processes."""
    root = os.environ.get("AND_ENGINE_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "and_engine"
    return Path(root) / "model_identity.json"


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember(path: str, key: str, digest: str) -> None:
    """Add a digest to the cache file, dropping the entries of older versions of the same file (best effort:
    an unwritable cache only means hashing again)."""
    with _LOCK:
        _MEMO[key] = digest
        data = {k: v for k, v in _read_cache().items() if not k.startswith(path + "|")}
        data[key] = digest
        try:
            write_text_atomic(cache_path(), json.dumps(data, sort_keys=True, indent=0))
        except OSError:
            pass


def content_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's whole content, read once per version of the file (see the module doc)."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}"
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
    stored = _read_cache().get(key)
    if stored:
        with _LOCK:
            _MEMO[key] = stored
        return stored
    digest = _hash_file(path)
    _remember(str(path), key, digest)
    return digest


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def model_identity(model: str | Path) -> str:
    """A model path (file or directory) -> "name#digest" of its content; anything else -> the string itself."""
    path = Path(str(model)).expanduser()
    if not str(model) or not path.exists():
        return str(model)
    h = hashlib.sha256()
    if path.is_file():
        h.update(content_digest(path).encode())
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_FILE_SUFFIXES)
        for p in files:
            h.update(f"{p.relative_to(path)}\0{content_digest(p)}\n".encode())
    return f"{path.resolve().name}#{h.hexdigest()[:16]}"
