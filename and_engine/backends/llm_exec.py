"""The ``execute`` part of plan -> execute -> ingest (``backends.llm.run_round``): LLM request lists.

An executor gets one backend and its whole request list (every uncached prompt of a round) and yields
chunks of ``(index, answer)`` as they finish, every index exactly once; the caller commits each chunk to
``llm_cache`` before asking for the next, so a crash loses at most one chunk. ``local`` runs in this
process: a backend with ``stream(prompts)`` (``openai``: up to ``batch_size`` concurrent requests over the
whole list) is read as it streams and cut into chunks; any other backend gets one ``generate`` call per
chunk (``vllm``: ``commit_size`` = 8,192 prompts per call, so a round up to that size is one call and vLLM's
scheduler keeps its batch full; ``transformers`` then batches by ``batch_size`` inside a call). Made by
``registry.make("llm_executor", "local")``.
"""

from __future__ import annotations

from collections.abc import Iterator

from and_engine.backends.registry import LLM, ExecutorOptions, LLMConfigError, LLMError
from and_engine.config import LLMConfig

# prompts between two llm_cache commits when ``llm.commit_every`` is 0 (others: 4 x batch_size)
DEFAULT_COMMIT = {"rule": 4096, "vllm": 8192}


def commit_size(cfg: LLMConfig) -> int:
    """Prompts answered between two ``llm_cache`` commits (the most a crash loses): ``cfg.commit_every``,
    else the backend's default (rule 4,096; vllm 8,192, also its prompts per call; others 4 x batch_size)."""
    if cfg.commit_every < 0:
        raise LLMConfigError(f"llm.commit_every must be >= 0 (0 = the backend's default), got {cfg.commit_every}")
    return cfg.commit_every or DEFAULT_COMMIT.get(cfg.backend, max(cfg.batch_size, 1) * 4)


class LocalExecutor:
    """Runs a request list in this process, through the backend's ``stream`` or ``generate``."""

    def describe(self) -> dict:
        return {"backend": "local", "model": "", "params": {}}

    def run(self, llm: LLM, prompts: list[str], chunk: int) -> Iterator[list[tuple[int, str]]]:
        """Prompts -> chunks of at most ``chunk`` (index, answer); a backend's wrong answer count is an
        LLMError before anything of that call is yielded."""
        if chunk < 1:
            raise LLMConfigError(f"chunk must be >= 1, got {chunk}")
        stream = getattr(llm, "stream", None)
        if stream is not None:
            part: list[tuple[int, str]] = []
            for i, answer in stream(prompts):
                part.append((i, answer))
                if len(part) == chunk:
                    yield part
                    part = []
            if part:
                yield part
            return
        for start in range(0, len(prompts), chunk):
            batch = prompts[start : start + chunk]
            answers = llm.generate(batch)
            if len(answers) != len(batch):
                name = llm.describe()["backend"]
                raise LLMError(f"{name} returned {len(answers)} answers for {len(batch)} prompts")
            yield list(zip(range(start, start + len(batch)), answers))


def create_local(argument: str, options: ExecutorOptions) -> LocalExecutor:
    return LocalExecutor()
