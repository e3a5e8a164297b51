"""Devices and weight precisions, one implementation for every torch component (target models, captioner,
LLMs, text encoders, the audio-text model).

* ``resolve_device(name)``: ``cpu`` | ``cuda`` | ``cuda:N`` | ``auto`` (CUDA when torch sees one, else CPU)
  -> a torch device string; CUDA asked for but absent is a ``DeviceError`` naming the key.
* ``weight_dtype(precision, device)``: ``auto`` (bfloat16 on CUDA, float32 on CPU) | ``bfloat16`` |
  ``float16`` | ``float32`` -> a torch dtype. ``auto`` never picks float16: Qwen-family models emit
  garbage in float16, and bfloat16 has float32's range.
* ``free_memory()``: after a caller dropped its model, collect and hand cached CUDA memory back (before
  vLLM starts, which asks for a fixed share of the GPU's memory).
* ``check_transformers()``: the code passes ``dtype=`` to ``from_pretrained`` (transformers >= 4.56);
  older versions silently ignore it and load float32.
"""

from __future__ import annotations

import gc

DEVICES = "cpu | cuda | cuda:N | auto"
PRECISIONS = ("auto", "bfloat16", "float16", "float32")
MIN_TRANSFORMERS = (4, 56)  # requirements.txt says the same (tests/test_devices.py checks it)


class DeviceError(ValueError):
    """A device or precision that cannot be used here; the message names the configuration key."""


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(name: str, key: str = "device") -> str:
    """A configured device -> the torch device string to use (``auto`` decided on this machine)."""
    import torch

    name = str(name or "").strip().lower()
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"{key}: {name!r} is not a device ({DEVICES})") from exc
    if dev.type == "cuda" and not cuda_available():
        raise DeviceError(f"{key} = {name!r} but CUDA is not available on this machine (use cpu or auto)")
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"{key}: {name!r} is not supported ({DEVICES})")
    return str(dev)


def weight_dtype(precision: str, device: str, key: str = "precision"):
    """``precision`` for weights on ``device`` (a resolved device) -> torch dtype."""
    import torch

    if precision not in PRECISIONS:
        raise DeviceError(f"{key} must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return getattr(torch, precision)


def free_memory() -> None:
    """Collect garbage and empty the CUDA cache (call it after dropping the last reference to a model)."""
    import torch

    gc.collect()
    torch.cuda.empty_cache()  # a no-op where CUDA was never initialised


def check_transformers() -> None:
    """Raise when the installed transformers is older than ``MIN_TRANSFORMERS`` (it would ignore ``dtype=``)."""
    import transformers

    parts = tuple(int(p) for p in transformers.__version__.split(".")[:2] if p.isdigit())
    if parts < MIN_TRANSFORMERS:
        need = ".".join(map(str, MIN_TRANSFORMERS))
        raise DeviceError(f"transformers {transformers.__version__} is too old: >= {need} is needed "
                          f"(older versions ignore dtype= and load float32); pip install -r requirements.txt")
