"""The audio-llm captioner on a tiny randomly initialised Qwen2-Audio model (same class as the real one)."""

from __future__ import annotations

import numpy as np
import pytest
from _describe_fixtures import AUDIO_LLM_WORDS, SR, save_tiny_qwen2_audio, signals

from and_engine.backends.registry import CaptionerError, make
from and_engine.config import CaptionsConfig
from and_engine.stages.captions import compute_captions
from and_engine.store.schema import columns


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_qwen2_audio(tmp_path_factory.mktemp("qwen2audio"))


def test_generates_text_for_a_batch(tiny_model):
    cfg = CaptionsConfig(backend="audio-llm", model_path=str(tiny_model), batch_size=2, max_new_tokens=6)
    captioner = make("captioner", cfg.backend, cfg)
    audio = np.stack([signals(2.0)[k] for k in ("tone", "white", "clicks")]).astype(np.float32)
    out = compute_captions(audio, SR, captioner, batch_size=3)
    caps = out["captions"]["caption"].tolist()
    assert len(caps) == 3 and all(isinstance(c, str) for c in caps)
    words = [w for c in caps for w in c.split()]
    assert words and set(words) <= set(AUDIO_LLM_WORDS)  # decoded from the model's vocabulary
    assert list(out["acoustic_features"].columns) == columns("acoustic_features")[1:]
    info = captioner.describe()
    assert info["backend"] == "audio-llm" and info["params"]["prompt"] == "Please describe the audio in detail."


def test_prompt_reaches_the_model_with_one_audio_token_run_per_clip(tiny_model):
    captioner = make("captioner", "audio-llm", dict(model_path=str(tiny_model)))
    processor = captioner._load()[0]
    chat = [{"role": "user", "content": [{"type": "audio", "audio_url": "clip"},
                                         {"type": "text", "text": captioner.prompt}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert "<|audio_bos|><|AUDIO|><|audio_eos|>" in text and "Please describe the audio in detail." in text
    inputs = processor(text=[text], audio=[signals(2.0)["tone"].astype(np.float32)], sampling_rate=SR,
                       return_tensors="pt")
    n_audio = int((inputs["input_ids"] == processor.audio_token_id).sum())
    assert n_audio == 50  # 2 s -> 200 mel frames -> 100 after the conv stride -> 50 after pooling


def test_missing_model_directory_is_a_clear_error(tmp_path):
    captioner = make("captioner", "audio-llm", dict(model_path=str(tmp_path / "nothing")))
    with pytest.raises(CaptionerError, match="not a local model directory"):
        captioner.caption(np.zeros((1, SR), np.float32), SR)


def test_qwen2_audio_loads_in_bfloat16_on_cuda_and_float32_on_cpu(monkeypatch, tiny_model):
    """Qwen models emit garbage in float16: on CUDA the captioner asks transformers for bfloat16."""
    import torch
    from transformers import Qwen2AudioForConditionalGeneration

    seen = {}
    real = Qwen2AudioForConditionalGeneration.from_pretrained

    def spy(path, **kwargs):
        seen.update(kwargs)
        if kwargs["dtype"] != torch.float32:
            raise RuntimeError("stop: no GPU here")
        return real(path, **kwargs)

    monkeypatch.setattr(Qwen2AudioForConditionalGeneration, "from_pretrained", spy)
    make("captioner", "audio-llm", dict(model_path=str(tiny_model), device="cpu"))._load()
    assert seen["dtype"] == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(RuntimeError, match="stop"):
        make("captioner", "audio-llm", dict(model_path=str(tiny_model), device="cuda"))._load()
    assert seen["dtype"] == torch.bfloat16


def test_release_drops_the_model_and_it_loads_again(tiny_model):
    captioner = make("captioner", "audio-llm", dict(model_path=str(tiny_model), max_new_tokens=2))
    captioner._load()
    captioner.release()
    assert captioner._loaded is None
    assert len(captioner.caption(signals(1.0)["tone"][None].astype(np.float32), SR).captions) == 1
