"""What every LLM backend shares: the sampling settings and the answer cache in front of any backend.

``sampling_params(cfg)`` / ``check_sampling(cfg)``: the settings that change an answer, and their ranges.
``CachedLLM`` puts the ``llm_cache`` table in front of any backend (SPEC section 5). Every LLM request goes
plan -> execute -> ingest: ``plan`` keys the prompts of any number of requests, drops duplicates and cached
ones and groups the rest by backend into one request list each; ``execute`` sends a list through an
executor (``registry.LLMExecutor``, ``backends.llm_exec``) and ingests each chunk of answers into the
cache as it arrives. ``run_round`` does both for a pipeline round (all summaries; then ICL and the
adjective filter), ``CachedLLM.generate`` for one request, so the steps read their answers from the
cache. Backends are made by ``registry.make("llm", name, options)``: ``rule`` (embedded, deterministic),
``llama-cpp`` (local GGUF), ``transformers`` (local directory or GGUF), ``vllm`` (GPU), ``openai`` (any
OpenAI-compatible server).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from and_engine.backends.llm_exec import LocalExecutor
from and_engine.backends.registry import LLM, LLMConfigError, LLMError, LLMExecutor
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
    that goes into every key. ``chunk_size``: answers per commit (``llm_exec.commit_size``). ``stats``
    counts requests, cache hits (unique keys) and prompts sent to the backend ("calls").
    """

    def __init__(self, llm: LLM, cache_get: Callable[[list[str]], dict[str, str]],
                 cache_put: Callable[[list[dict]], None], template: str = "", chunk_size: int = 32,
                 executor: LLMExecutor | None = None):
        if chunk_size < 1:
            raise LLMConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        self.llm, self.template, self.chunk_size = llm, template, chunk_size
        self.executor = executor or LocalExecutor()
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
        answers, lists, _ = plan([(self, prompts)])
        for request_list in lists:
            answers.update(execute(request_list))
        return [answers[self.key(p)] for p in prompts]


Request = tuple[CachedLLM, Sequence[str]]  # prompts of one template for one backend


@dataclass
class RequestList:
    """One backend's unique uncached prompts (``keys[i]`` is the key of ``prompts[i]``, ``owners[i]`` the
    request that asked first): what ``execute`` sends as one list."""

    llm: CachedLLM
    keys: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    owners: list[CachedLLM] = field(default_factory=list)


@dataclass
class RoundStats:
    """What a round asked and sent: prompts (with duplicates), unique keys, cached, sent, request lists
    (one per backend with something to send) and the chunks committed."""

    prompts: int = 0
    unique: int = 0
    cached: int = 0
    sent: int = 0
    lists: int = 0
    chunks: int = 0


def plan(requests: Sequence[Request]) -> tuple[dict[str, str], list[RequestList], RoundStats]:
    """Requests -> ({key: cached answer}, one RequestList per backend with uncached prompts, stats).

    Requests share a list when they share the backend object (templates differ only in their keys);
    a prompt asked twice (same key) is sent once.
    """
    stats, found = RoundStats(), {}
    groups: dict[int, dict[str, tuple[CachedLLM, str]]] = {}
    first: dict[int, CachedLLM] = {}
    for cached, prompts in requests:
        cached.stats["requests"] += len(prompts)
        stats.prompts += len(prompts)
        unique = groups.setdefault(id(cached.llm), {})
        first.setdefault(id(cached.llm), cached)
        for prompt in prompts:
            unique.setdefault(cached.key(prompt), (cached, prompt))
    lists = []
    for backend_id, unique in groups.items():
        hits = dict(first[backend_id]._get(sorted(unique))) if unique else {}
        found.update(hits)
        stats.unique += len(unique)
        stats.cached += len(hits)
        todo = RequestList(first[backend_id])
        for key, (owner, prompt) in unique.items():
            if key in hits:
                owner.stats["hits"] += 1
            else:
                todo.keys.append(key)
                todo.prompts.append(prompt)
                todo.owners.append(owner)
        if todo.prompts:
            lists.append(todo)
    stats.lists = len(lists)
    stats.sent = sum(len(t.prompts) for t in lists)
    return found, lists, stats


def execute(todo: RequestList, on_chunk: Callable[[int], object] | None = None) -> dict[str, str]:
    """Send one request list through its executor; commit every chunk of answers to the cache as it arrives
    -> {key: answer}. LLMError when the executor answers a prompt twice, out of range, or not at all."""
    cached, n = todo.llm, len(todo.prompts)
    params_json = json.dumps(cached.params, sort_keys=True)
    answered: dict[str, str] = {}
    done: set[int] = set()
    for part in cached.executor.run(cached.llm, todo.prompts, cached.chunk_size):
        rows = []
        for i, answer in part:
            if not 0 <= i < n or i in done:
                raise LLMError(f"{cached.backend}: the executor answered prompt {i} of {n} twice or out of range")
            done.add(i)
            key = todo.keys[i]
            answered[key] = answer
            todo.owners[i].stats["calls"] += 1
            rows.append({"cache_key": key, "prompt": todo.prompts[i], "response": answer, "backend": cached.backend,
                         "llm_model": cached.model, "params_json": params_json})
        cached._put(rows)
        if on_chunk is not None:
            on_chunk(len(rows))
    if len(done) != n:
        raise LLMError(f"{cached.backend} returned {len(done)} answers for {n} prompts")
    return answered


def run_round(requests: Sequence[Request], on_chunk: Callable[[int], object] | None = None,
              on_plan: Callable[[RoundStats], object] | None = None) -> RoundStats:
    """Plan, execute and ingest every request of a round: each backend gets its uncached prompts as one
    request list; answers land in the cache, where the steps then find them -> the round's stats.
    ``on_plan(stats)`` is told what will be sent before anything is; ``on_chunk(n)`` after each commit."""
    _, lists, stats = plan(requests)
    if on_plan is not None:
        on_plan(stats)

    def committed(n: int) -> None:
        stats.chunks += 1
        if on_chunk is not None:
            on_chunk(n)

    for todo in lists:
        execute(todo, committed)
    return stats
