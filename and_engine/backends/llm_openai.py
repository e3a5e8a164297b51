"""The ``openai`` LLM backend: any OpenAI-compatible chat server (``vllm serve``, llama.cpp server, Ollama).

Standard library HTTP only. ``llm.base_url`` is the server root (``http://host:8000`` or ``.../v1``);
``llm.model`` the served model name. Each prompt is one ``POST /v1/chat/completions``; up to
``batch_size`` requests run concurrently (servers batch them); ``stream(prompts)`` keeps that many in
flight over a whole request list and yields answers as they finish (``backends.llm_exec``). Timeouts
(``timeout_s``), retries with exponential backoff on connection errors / 408 / 429 / 5xx, and an
``LLMError`` naming the URL and the server's message otherwise. An API key, when the server needs one,
is read from the environment variable ``OPENAI_API_KEY``. Made by ``registry.make("llm", "openai", options)``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from and_engine.backends.llm import check_sampling, sampling_params
from and_engine.backends.registry import LLMConfigError, LLMError
from and_engine.config import LLMConfig

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAICompatLLM:
    """Chat completions over HTTP; deterministic requests send temperature 0 and the seed."""

    backend = "openai"
    retries = 4
    backoff_s = 0.5  # first wait; doubles each retry

    def __init__(self, cfg: LLMConfig):
        check_sampling(cfg)
        if not cfg.base_url.startswith(("http://", "https://")):
            raise LLMConfigError(f"llm.base_url must be an http(s) URL for backend 'openai', got {cfg.base_url!r}")
        if not cfg.model:
            raise LLMConfigError("llm.model must name the served model for backend 'openai'")
        self.cfg = cfg
        root = cfg.base_url.rstrip("/")
        self.url = root + ("/chat/completions" if root.endswith("/v1") else "/v1/chat/completions")

    def describe(self) -> dict:
        return {"backend": self.backend, "model": self.cfg.model, "params": sampling_params(self.cfg)}

    def _request(self, prompt: str) -> str:
        c = self.cfg
        body = json.dumps({"model": c.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": c.temperature, "top_p": c.top_p, "max_tokens": c.max_new_tokens,
                           "seed": c.seed}).encode()
        headers = {"Content-Type": "application/json"}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = "Bearer " + os.environ["OPENAI_API_KEY"]
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=c.timeout_s) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {exc.code}: {detail}"
                if exc.code in RETRY_STATUS:
                    continue
                raise LLMError(f"openai backend: {self.url} answered {last}") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
                continue
            except json.JSONDecodeError as exc:
                raise LLMError(f"openai backend: {self.url} returned invalid JSON ({exc})") from exc
            try:
                return payload["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError) as exc:
                raise LLMError(f"openai backend: unexpected response from {self.url}: {str(payload)[:300]}") from exc
        raise LLMError(f"openai backend: {self.url} failed after {self.retries + 1} attempts ({last})")

    def stream(self, prompts: list[str]) -> Iterator[tuple[int, str]]:
        """Prompts -> (index, answer) in the order they finish, ``batch_size`` requests in flight; a failed
        request raises at once (requests not yet started are never sent)."""
        if not prompts:
            return
        workers = max(1, min(self.cfg.batch_size, len(prompts)))
        pool = ThreadPoolExecutor(max_workers=workers)
        pending: dict[Future, int] = {}
        todo = iter(range(len(prompts)))
        try:
            for i in todo:  # fill the pool, then one new request per finished one
                pending[pool.submit(self._request, prompts[i])] = i
                if len(pending) >= workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    yield i, fut.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending[pool.submit(self._request, prompts[nxt])] = nxt
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def generate(self, prompts: list[str]) -> list[str]:
        out = [""] * len(prompts)
        for i, answer in self.stream(prompts):
            out[i] = answer
        return out


def create(argument: str, cfg: LLMConfig) -> OpenAICompatLLM:
    return OpenAICompatLLM(cfg)
