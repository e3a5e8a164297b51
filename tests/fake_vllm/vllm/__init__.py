"""A recording fake of the ``vllm`` package, for tests on machines without a GPU (fixture ``fake_vllm``).

It has what ``and_engine.backends.llm_local.VllmLLM`` uses: ``LLM(model, **engine_kwargs)`` with
``chat(conversations, sampling_params, use_tqdm=...)`` and ``generate(prompts, sampling_params, ...)``
returning objects with ``.outputs[0].text``, and ``SamplingParams(**kwargs)``. It answers every prompt as
the embedded ``rule`` backend would, and records:

* ``CALLS``: one ``(method, number of prompts)`` per ``chat`` / ``generate`` call, ``PROMPTS``: the
  prompts of each call (parallel lists); ``ENGINES``: the keyword arguments of every ``LLM(...)``;
  ``SAMPLING``: the keyword arguments of every ``SamplingParams(...)``.
* ``FAIL_ON_CALL = n``: the n-th call (1-based, counted in ``CALLS``) raises before answering (a crash).

``reset()`` clears all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CALLS: list[tuple[str, int]] = []
PROMPTS: list[list[str]] = []
ENGINES: list[dict] = []
SAMPLING: list[dict] = []
FAIL_ON_CALL: int | None = None


def reset() -> None:
    global FAIL_ON_CALL
    for record in (CALLS, PROMPTS, ENGINES, SAMPLING):
        record.clear()
    FAIL_ON_CALL = None


class SamplingParams:
    def __init__(self, **kwargs):
        SAMPLING.append(dict(kwargs))
        self.kwargs = kwargs


@dataclass
class CompletionOutput:
    text: str


@dataclass
class RequestOutput:
    prompt: str
    outputs: list[CompletionOutput] = field(default_factory=list)


class LLM:
    def __init__(self, model: str, **kwargs):
        ENGINES.append({"model": model, **kwargs})

    def _answer(self, method: str, prompts: list[str]) -> list[RequestOutput]:
        from and_engine.backends.llm_rule import RuleLLM

        CALLS.append((method, len(prompts)))
        PROMPTS.append(list(prompts))
        if FAIL_ON_CALL is not None and len(CALLS) == FAIL_ON_CALL:
            raise RuntimeError(f"fake vllm: crashed on call {FAIL_ON_CALL}")
        return [RequestOutput(p, [CompletionOutput(a)]) for p, a in zip(prompts, RuleLLM().generate(prompts))]

    def chat(self, messages, sampling_params=None, use_tqdm=True, **kwargs) -> list[RequestOutput]:
        conversations = messages if messages and isinstance(messages[0], list) else [messages]
        return self._answer("chat", [turns[-1]["content"] for turns in conversations])

    def generate(self, prompts, sampling_params=None, use_tqdm=True, **kwargs) -> list[RequestOutput]:
        return self._answer("generate", [prompts] if isinstance(prompts, str) else list(prompts))
