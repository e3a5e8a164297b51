"""Local LLM engines on a GPU, checked here: vLLM's engine settings (recording fake of the vllm package),
llama.cpp offload (recording fake of llama_cpp), transformers' dtype and device (tiny random Llama / Qwen2)."""

from __future__ import annotations

import pytest
import torch
from _describe_fixtures import save_tiny_causal_lm
from fakes import use_fake_llama_cpp, use_fake_vllm, vllm_calls

from and_engine.backends.registry import LLMConfigError, make
from and_engine.config import LLMConfig


class Stop(Exception):
    """Raised by a spy once it has seen what it needs (no GPU here to go further)."""


def test_vllm_engine_gets_every_configured_setting(monkeypatch):
    vllm = use_fake_vllm(monkeypatch)
    cfg = LLMConfig(backend="vllm", model="/models/llama-8b", seed=3, tensor_parallel_size=2, max_model_len=4096,
                    gpu_memory_utilization=0.6, dtype="bfloat16", quantization="awq", max_num_seqs=512)
    llm = make("llm", "vllm", cfg)
    assert llm.generate(["one", "two", "three"]) and llm.generate(["four"])
    assert vllm.INITS == [{"model": "/models/llama-8b", "enable_prefix_caching": True, "seed": 3,
                           "dtype": "bfloat16", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.6,
                           "max_model_len": 4096, "max_num_seqs": 512, "quantization": "awq"}]
    assert vllm_calls(vllm) == [("chat", 3), ("chat", 1)]  # one engine, two calls
    assert vllm.CALLS[0]["params"] == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024, "seed": 3}
    assert llm.describe()["params"]["dtype"] == "bfloat16" and llm.describe()["params"]["quantization"] == "awq"


def test_vllm_defaults_fit_an_8b_model_on_a_24gb_card(monkeypatch):
    vllm = use_fake_vllm(monkeypatch)
    llm = make("llm", "vllm", LLMConfig(backend="vllm", model="m"))
    llm.generate(["x"])
    init = vllm.INITS[0]
    assert init["max_model_len"] == 8192 and init["gpu_memory_utilization"] == 0.85 and init["dtype"] == "auto"
    assert "max_num_seqs" not in init and "quantization" not in init  # vLLM's own defaults
    # 8B in bf16 = 16 GB of weights; 0.85 x 24 GB leaves ~4 GB, > one 8192-token sequence's KV (~1 GB)
    assert 0.85 * 24 - 16 > 8192 * 2 * 32 * 8 * 128 * 2 / 2**30
    assert set(llm.describe()["params"]) == {"temperature", "top_p", "max_new_tokens", "seed"}  # old cache keys


@pytest.mark.parametrize("bad", [{"gpu_memory_utilization": 1.5}, {"tensor_parallel_size": 0}, {"dtype": "int4"}])
def test_vllm_rejects_bad_engine_settings(monkeypatch, bad):
    use_fake_vllm(monkeypatch)
    with pytest.raises(LLMConfigError, match="llm"):
        make("llm", "vllm", LLMConfig(backend="vllm", model="m", **bad)).generate(["x"])


@pytest.mark.parametrize("device, cuda, layers", [("cpu", True, 0), ("auto", False, 0), ("auto", True, -1),
                                                  ("cuda", True, -1)])
def test_llama_cpp_offloads_layers_on_cuda_only(monkeypatch, tmp_path, device, cuda, layers):
    llama = use_fake_llama_cpp(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    make("llm", "llama-cpp", LLMConfig(backend="llama-cpp", model=str(gguf), device=device)).generate(["x"])
    assert llama.INITS[0]["n_gpu_layers"] == layers and llama.INITS[0]["n_threads"] == 1


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny_lm(request, tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp(request.param), request.param)


def test_transformers_llm_runs_a_tiny_random_model_of_the_real_class(tiny_lm):
    llm = make("llm", "transformers", LLMConfig(backend="transformers", model=str(tiny_lm), max_new_tokens=4,
                                                device="cpu", batch_size=2))
    answers = llm.generate(["what dog", "rain", "what in common"])
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    tok, model, device = llm._engine
    assert device == "cpu" and model.dtype == torch.float32  # auto on CPU: float32


def test_transformers_llm_loads_bfloat16_on_cuda(monkeypatch, tiny_lm):
    import transformers

    seen = {}

    def spy(src, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    with pytest.raises(Stop):
        make("llm", "transformers", LLMConfig(backend="transformers", model=str(tiny_lm))).generate(["x"])
    assert seen["dtype"] == torch.bfloat16
    with pytest.raises(Stop):
        make("llm", "transformers", LLMConfig(backend="transformers", model=str(tiny_lm), dtype="float16")).generate(
            ["x"])
    assert seen["dtype"] == torch.float16


def test_cuda_asked_for_without_cuda_is_a_clear_error(tiny_lm):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(LLMConfigError, match="llm.device.*CUDA is not available"):
        make("llm", "transformers", LLMConfig(backend="transformers", model=str(tiny_lm), device="cuda")).generate(
            ["x"])
