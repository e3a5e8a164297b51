"""The neuron page's "Describe with the local LLM": S_h and S_l of one neuron by a GGUF model through llama.cpp.

* ``gguf_path(config)`` / ``unavailable(path)``: where the model is (``$AND_EXPLORER_LOCAL_LLM``, else the
  file ``scripts/install_local_llm.sh`` writes) and why it cannot run ("" when llama_cpp imports and the file
  exists).
* ``make_local_llm(path)``: the ``llama-cpp`` summaries backend (``registry.make``), greedy, single-threaded.
* ``describe_neuron``: the summaries stage's own prompts and cleaning (``stages.summaries``) for this one
  neuron, through ``CachedLLM`` over the side database ``store.live_cache.LiveCache`` (provenance per answer);
  ``cached_description`` answers from the cache only (no model load), or None.
* ``calibration_points``: Module B's points of the new S_h against the new S_l (``stages.module_b``); the page
  applies its threshold with ``live.recalibrate``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from and_engine.config import Config, LLMConfig
from and_engine.store.results import ResultsStore

GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"  # what scripts/install_local_llm.sh writes
DEFAULT_GGUF = f"data/models/{GGUF_NAME}"
ENV = "AND_EXPLORER_LOCAL_LLM"
INSTALL = "bash scripts/install_local_llm.sh"
MAX_NEW_TOKENS = 256  # a 5-caption summary takes 60-150 tokens; the cap bounds a runaway answer (~15 s)


class LocalLLMError(ValueError):
    """The neuron cannot be described (no top-K / bottom-K, no captions); the message says why."""


def gguf_path(config: Config) -> Path:
    """The local model: ``$AND_EXPLORER_LOCAL_LLM`` if set, else ``data/models/<GGUF_NAME>`` of the project."""
    return Path(os.environ[ENV]).expanduser() if os.environ.get(ENV) else config.resolve(DEFAULT_GGUF)


def unavailable(path: Path) -> str:
    """"" when llama-cpp-python imports and ``path`` exists; otherwise what is missing and how to install it."""
    missing = []
    if importlib.util.find_spec("llama_cpp") is None:
        missing.append("llama-cpp-python is not installed")
    if not Path(path).is_file():
        missing.append(f"the model file {path} is not there")
    if not missing:
        return ""
    return (f"The local LLM is not set up: {'; '.join(missing)}. Install it once with {INSTALL} (it compiles "
            "llama-cpp-python, 8-21 min on 2 cores, and assembles Qwen2.5-Coder-1.5B-Instruct, 1.1 GB), "
            f"or point {ENV} at another GGUF file.")


def llm_config(path: Path, max_new_tokens: int = MAX_NEW_TOKENS) -> LLMConfig:
    """The summaries LLM settings of the live description: greedy, on the CPU, ``MAX_NEW_TOKENS`` by default."""
    return LLMConfig(backend="llama-cpp", model=str(path), temperature=0.0, max_new_tokens=max_new_tokens,
                     device="cpu")


def make_local_llm(path: Path, max_new_tokens: int = MAX_NEW_TOKENS):
    """-> the ``llama-cpp`` backend for ``path`` (loads the model on its first ``generate``); a smaller
    ``max_new_tokens`` bounds the time of a check (the test of the real model)."""
    from and_engine.backends.registry import make

    cfg = llm_config(path, max_new_tokens)
    return make("llm", cfg.backend, cfg)


def sentence_encoder(name: str):
    """-> Module B's sentence encoder ``name`` (``module_b.sentence_encoder`` of the build), as the build makes it."""
    from and_engine.backends.registry import make

    return make("text_encoder", name)


@dataclass
class LiveDescription:
    """A neuron's live summaries: ``summaries`` rows (side top|bottom, summary, status, cache_key, backend,
    llm_model), the cache rows behind them (``provenance``: prompt, response, params_json, created_at, ...) and
    how many answers the model computed now (0: all from the cache)."""

    summaries: pd.DataFrame
    provenance: pd.DataFrame
    computed: int

    def text(self, side: str) -> str:
        row = self.summaries[self.summaries["side"] == side]
        return str(row["summary"].iloc[0]) if len(row) else ""


def _inputs(store: ResultsStore, model: str, layer: str, neuron: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    ext = store.read("extremes", ["model", "layer", "neuron", "topk_clip_ids", "bottomk_clip_ids"], model=model,
                     layer=layer, neuron=int(neuron))
    if ext.empty:
        raise LocalLLMError(f"no top-K / bottom-K clips for {model}/{layer}/{neuron}")
    ids = sorted({int(c) for col in ("topk_clip_ids", "bottomk_clip_ids") for c in ext[col].iloc[0]})
    return ext, store.read("captions", ["clip_id", "caption"], clip_id=ids)


def _describe(store: ResultsStore, cache, llm, model: str, layer: str, neuron: int,
              cache_only: bool) -> LiveDescription | None:
    from and_engine.backends.llm import CachedLLM
    from and_engine.stages.summaries import compute_summaries, summary_prompts
    from and_engine.text.prompts import SUMMARY_TEMPLATE_ID

    ext, captions = _inputs(store, model, layer, neuron)
    try:
        cached = CachedLLM(llm, cache.cache_get, cache.cache_put, template=SUMMARY_TEMPLATE_ID, chunk_size=1)
        keys = [cached.key(p) for p in summary_prompts(ext, captions)["prompt"]]
        if cache_only and len(cache.cache_get(keys)) < len(set(keys)):
            return None
        rows = compute_summaries(ext, captions, [(np.array([int(neuron)]), cached)])
    except (ValueError, RuntimeError) as exc:  # a clip without a caption; the model failed to load or answer
        raise LocalLLMError(f"{type(exc).__name__}: {exc}") from exc
    return LiveDescription(rows, cache.rows(rows["cache_key"].tolist()), int(cached.stats["calls"]))


def describe_neuron(store: ResultsStore, cache, llm, model: str, layer: str, neuron: int) -> LiveDescription:
    """S_h and S_l of one neuron by ``llm`` (``make_local_llm``); answers in ``cache`` (a ``LiveCache``) are reused."""
    return _describe(store, cache, llm, model, layer, neuron, cache_only=False)


def cached_description(store: ResultsStore, cache, llm, model: str, layer: str, neuron: int) -> LiveDescription | None:
    """Like ``describe_neuron`` when both answers are in the cache (the model is not loaded), else None."""
    return _describe(store, cache, llm, model, layer, neuron, cache_only=True)


def calibration_points(desc: LiveDescription, encoder, model: str, layer: str) -> pd.DataFrame:
    """Module B's points of the live S_h against the live S_l (``module_b.calibration_points``; ``encoder``: the
    build's ``module_b.sentence_encoder``); ``live.recalibrate`` applies a threshold."""
    from and_engine.stages.module_b import calibration_points as points

    return points(desc.summaries, encoder, model=model, layer=layer)
