"""LLM backends: one batched interface, a factory by name, and the shared answer cache.

``make_llm(cfg)`` -> an object with ``generate(prompts) -> answers`` and ``describe()``. Backends:
``rule`` (embedded, deterministic), ``llama-cpp`` (local GGUF), ``transformers`` (local directory or GGUF),
``vllm`` (GPU), ``openai`` (any OpenAI-compatible server). Heavy imports happen inside the backends.
``CachedLLM`` puts the ``llm_cache`` table in front of any backend (SPEC section 5).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from and_engine.config import LLMConfig

LLM_BACKENDS = ("rule", "llama-cpp", "transformers", "vllm", "openai")


class LLMError(RuntimeError):
    """An LLM backend failed (missing package / file, server error after retries); the message says how."""


class LLMConfigError(ValueError):
    """An LLM configuration is invalid (unknown backend, missing model path); the message names the field."""


@runtime_checkable
class LLM(Protocol):
    def generate(self, prompts: list[str]) -> list[str]:
        """Prompts -> answers, same length and order (one chat turn each)."""
        ...

    def describe(self) -> dict:
        """Provenance: {"backend", "model", "params"} (params = the sampling settings)."""
        ...


def sampling_params(cfg: LLMConfig) -> dict[str, Any]:
    """The sampling settings that change an answer (they are part of the cache key)."""
    return {"temperature": float(cfg.temperature), "top_p": float(cfg.top_p),
            "max_new_tokens": int(cfg.max_new_tokens), "seed": int(cfg.seed)}


def make_llm(cfg: LLMConfig) -> LLM:
    """LLMConfig -> backend instance (nothing heavy is loaded until the first ``generate``)."""
    if cfg.backend == "rule":
        from and_engine.backends.llm_rule import RuleLLM

        return RuleLLM()
    if cfg.temperature < 0 or not 0 < cfg.top_p <= 1 or cfg.max_new_tokens < 1:
        raise LLMConfigError(f"llm sampling settings out of range: {sampling_params(cfg)}")
    if cfg.backend in ("llama-cpp", "transformers", "vllm"):
        from and_engine.backends import llm_local

        cls = {"llama-cpp": llm_local.LlamaCppLLM, "transformers": llm_local.TransformersLLM,
               "vllm": llm_local.VllmLLM}[cfg.backend]
        return cls(cfg)
    if cfg.backend == "openai":
        from and_engine.backends.llm_openai import OpenAICompatLLM

        return OpenAICompatLLM(cfg)
    raise LLMConfigError(f"llm.backend: unknown backend {cfg.backend!r}; known: {', '.join(LLM_BACKENDS)}")


def cache_key(content: str | Sequence[int], template: str, backend: str, model: str, params: dict) -> str:
    """sha256 hex of (sorted clip ids or the prompt, template id, backend, model, sampling params)."""
    if not isinstance(content, str):
        content = sorted(int(c) for c in content)
    payload = json.dumps([content, template, backend, model, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class CachedLLM:
    """An LLM behind the ``llm_cache`` table: cached prompts make no call; new answers commit per chunk.

    ``cache_get(keys) -> {key: response}`` and ``cache_put(rows)`` are the store's methods (injected, so
    this class does no database I/O itself). ``template``: the prompt template id (prompts.*_TEMPLATE_ID)
    that goes into every key. ``stats`` counts requests, cache hits and backend calls.
    """

    def __init__(self, llm: LLM, cache_get: Callable[[list[str]], dict[str, str]],
                 cache_put: Callable[[list[dict]], None], template: str = "", chunk_size: int = 32):
        if chunk_size < 1:
            raise LLMConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        self.llm, self.template, self.chunk_size = llm, template, chunk_size
        self._get, self._put = cache_get, cache_put
        info = llm.describe()
        self.backend, self.model, self.params = info["backend"], info["model"], info.get("params", {})
        self.stats = {"requests": 0, "hits": 0, "calls": 0}

    def describe(self) -> dict:
        return self.llm.describe()

    def key(self, prompt: str) -> str:
        return cache_key(prompt, self.template, self.backend, self.model, self.params)

    def generate(self, prompts: list[str]) -> list[str]:
        """Prompts -> answers; duplicates and cached prompts are not sent to the backend."""
        keys = [self.key(p) for p in prompts]
        found = dict(self._get(sorted(set(keys)))) if keys else {}
        todo: dict[str, str] = {}
        for k, p in zip(keys, prompts):
            if k not in found:
                todo.setdefault(k, p)
        self.stats["requests"] += len(prompts)
        self.stats["hits"] += sum(k in found for k in set(keys))
        items = list(todo.items())
        for start in range(0, len(items), self.chunk_size):
            chunk = items[start : start + self.chunk_size]
            answers = self.llm.generate([p for _, p in chunk])
            if len(answers) != len(chunk):
                raise LLMError(f"{self.backend} returned {len(answers)} answers for {len(chunk)} prompts")
            self.stats["calls"] += len(chunk)
            params_json = json.dumps(self.params, sort_keys=True)
            rows = [{"cache_key": k, "prompt": p, "response": a, "backend": self.backend,
                     "llm_model": self.model, "params_json": params_json} for (k, p), a in zip(chunk, answers)]
            self._put(rows)
            found.update({k: a for (k, _), a in zip(chunk, answers)})
        return [found[k] for k in keys]
