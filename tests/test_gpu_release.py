"""One build on one GPU: the audio-LLM captioner hands the GPU back before vLLM starts (recording fake of vllm,
tiny random Qwen2-Audio of the real class), and vLLM gets the configured share of the GPU's memory."""

from __future__ import annotations

import gc

import torch
from _describe_fixtures import save_tiny_qwen2_audio
from _tiny import write_config
from fakes import use_fake_vllm

from and_engine.config import load_config
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress

BODY = """
[[models]]
name = "yamnet"
kind = "yamnet"
layers = ["block1.conv"]

[captions]
backend = "audio-llm"
model_path = "{qwen}"
max_new_tokens = 3
batch_size = 13

[summaries.llm]
backend = "vllm"
model = "/models/an-8b-instruct"
gpu_memory_utilization = 0.7
"""


def test_captioner_releases_the_gpu_before_vllm_starts(monkeypatch, tmp_path):
    from transformers import Qwen2AudioForConditionalGeneration

    vllm = use_fake_vllm(monkeypatch)
    real_empty = torch.cuda.empty_cache
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: (vllm.EVENTS.append("empty_cache"), real_empty())[1])
    qwen = save_tiny_qwen2_audio(tmp_path / "qwen2-audio")
    alive = []
    vllm.ON_INIT.append(lambda kwargs: alive.extend(  # type(): a dead weak proxy must not be dereferenced
        o for o in gc.get_objects() if type(o) is Qwen2AudioForConditionalGeneration
        and o.config._name_or_path == str(qwen)))  # this build's model (other tests' may still be alive)
    config = load_config(write_config(tmp_path / "run", BODY.format(qwen=qwen), max_clips=26))
    build(config, Progress(quiet=True), until="describe")
    assert vllm.EVENTS.index("empty_cache") < vllm.EVENTS.index("LLM")
    assert alive == []  # no Qwen2-Audio model left anywhere when vLLM asked for its share of the GPU
    assert len(vllm.INITS) == 1 and vllm.INITS[0]["gpu_memory_utilization"] == 0.7
    assert 0 < sum(c["n_prompts"] for c in vllm.CALLS) <= 2 * 32  # every summary prompt of the 32 units, once
