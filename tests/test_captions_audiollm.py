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
    processor, _ = captioner._load()
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
