"""What identifies a model on disk, for cache keys and fingerprints: its content, not only its name.

``model_identity("/models/v2/ggml-model-Q4_K_M.gguf")`` -> ``"ggml-model-Q4_K_M.gguf#<digest>"``, where the
digest covers every weight / config file's relative path, size and a SHA-256 of its first and last MiB
(fast for multi-GB files, and it changes when weights are replaced in place). A string that is not a
local path (a hub id such as ``meta-llama/Llama-2-13b-chat-hf``) is returned whole.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20
MODEL_FILE_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".onnx", ".json", ".model", ".txt", ".ckpt")


def _file_digest(path: Path, h: hashlib._Hash) -> None:
    size = path.stat().st_size
    h.update(f"{size}:".encode())
    with path.open("rb") as fh:
        h.update(fh.read(CHUNK))
        if size > 2 * CHUNK:
            fh.seek(size - CHUNK)
            h.update(fh.read(CHUNK))


def model_identity(model: str | Path) -> str:
    """A model path (file or directory) -> "name#digest" of its content; anything else -> the string itself."""
    path = Path(str(model)).expanduser()
    if not str(model) or not path.exists():
        return str(model)
    h = hashlib.sha256()
    if path.is_file():
        _file_digest(path, h)
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_FILE_SUFFIXES)
        for p in files:
            h.update(str(p.relative_to(path)).encode())
            _file_digest(p, h)
    return f"{path.resolve().name}#{h.hexdigest()[:16]}"
