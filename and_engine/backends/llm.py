"""What every LLM backend shares: the sampling settings and the answer cache in front of any backend.

``sampling_params(cfg)`` / ``check_sampling(cfg)``: the settings that change an answer, and their ranges.
``CachedLLM`` puts the ``llm_cache`` table in front of any backend (SPEC section 5). Backends are made by
``registry.make("llm", name, options)``: ``rule`` (embedded, deterministic), ``llama-cpp`` (local GGUF),
``transformers`` (local directory or GGUF), ``vllm`` (GPU), ``openai`` (any OpenAI-compatible server).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from and_engine.backends.registry import LLM, LLMConfigError, LLMError
from and_engine.config import LLMConfig


def sampling_params(cfg: LLMConfig) -> dict[str, Any]:
    """The sampling settings that change an answer (they are part of the cache key)."""
    return {"temperature": float(cfg.temperature), "top_p": float(cfg.top_p),
            "max_new_tokens": int(cfg.max_new_tokens), "seed": int(cfg.seed)}


def check_sampling(cfg: LLMConfig) -> None:
    """LLMConfigError unless temperature >= 0, 0 < top_p <= 1 and max_new_tokens >= 1."""
    if cfg.temperature < 0 or not 0 < cfg.top_p <= 1 or cfg.max_new_tokens < 1:
        raise LLMConfigError(f"llm sampling settings out of range: {sampling_params(cfg)}")


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
