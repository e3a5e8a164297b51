"""Devices and precisions: one resolver for every component; transformers new enough for ``dtype=``."""

from __future__ import annotations

import re

import pytest
import torch

from and_engine.config import PROJECT_ROOT
from and_engine.devices import MIN_TRANSFORMERS, DeviceError, check_transformers, resolve_device, weight_dtype


def test_auto_follows_the_machine_and_cuda_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu:0") == "cpu:0"
    with pytest.raises(DeviceError, match="captions.device = 'cuda' but CUDA is not available"):
        resolve_device("cuda", "captions.device")
    with pytest.raises(DeviceError, match="not a device"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"


def test_auto_precision_is_bfloat16_on_cuda_never_float16():
    assert weight_dtype("auto", "cuda") == torch.bfloat16 and weight_dtype("auto", "cuda:1") == torch.bfloat16
    assert weight_dtype("auto", "cpu") == torch.float32 and weight_dtype("float16", "cuda") == torch.float16
    with pytest.raises(DeviceError, match="precision must be one of"):
        weight_dtype("half", "cpu")


def test_requirements_ask_for_a_transformers_that_honours_dtype(monkeypatch):
    """``from_pretrained(dtype=...)`` exists from transformers 4.56; older ones ignore it and load float32."""
    text = (PROJECT_ROOT / "requirements.txt").read_text()
    low = re.search(r"^transformers>=(\d+)\.(\d+)", text, re.M)
    assert low and (int(low[1]), int(low[2])) >= MIN_TRANSFORMERS == (4, 56)
    check_transformers()  # the installed one is new enough
    import transformers

    monkeypatch.setattr(transformers, "__version__", "4.46.3")
    with pytest.raises(DeviceError, match="transformers 4.46.3 is too old"):
        check_transformers()
