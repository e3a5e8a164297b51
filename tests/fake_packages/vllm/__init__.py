"""A recording fake of the ``vllm`` package (tests put ``tests/fake_packages`` on sys.path: ``fakes.use_fake_vllm``).

``LLM(**kwargs)`` records its constructor arguments (``INITS``) and runs the ``ON_INIT`` callables first (a test
checks what else is on the device at that moment); ``chat`` / ``generate`` record one entry per call with the
number of prompts (``CALLS``: kind, n_prompts, params; ``PROMPTS``: the prompts of each call) and answer each prompt
with ``RESPOND(prompt)`` (default: the embedded rule summariser, so a pipeline built on it stores real, parseable
summaries). ``EVENTS`` is the order of it all. ``FAIL_ON_CALL = n``: the n-th call (1-based) raises before answering
(a crash mid-round). ``reset()`` clears all of it.
"""

from __future__ import annotations

INITS: list[dict] = []
CALLS: list[dict] = []
PROMPTS: list[list[str]] = []
EVENTS: list[str] = []
ON_INIT: list = []
RESPOND = None
FAIL_ON_CALL: int | None = None


def reset() -> None:
    global RESPOND, FAIL_ON_CALL
    for record in (INITS, CALLS, PROMPTS, EVENTS, ON_INIT):
        record.clear()
    RESPOND = None
    FAIL_ON_CALL = None


def _answer(prompt: str) -> str:
    if RESPOND is not None:
        return RESPOND(prompt)
    from and_engine.backends.llm_rule import RuleLLM
    from and_engine.text.prompts import PromptError

    try:
        return RuleLLM().generate([prompt])[0]
    except PromptError:  # a prompt the pipeline never builds (a unit test's "x"): any text
        return f"an answer to {prompt[:20]}"


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class _Completion:
    def __init__(self, text: str):
        self.text = text


class _RequestOutput:
    def __init__(self, text: str):
        self.outputs = [_Completion(text)]


class LLM:
    def __init__(self, *model, **kwargs):
        kwargs = {"model": model[0], **kwargs} if model else kwargs
        for hook in ON_INIT:
            hook(kwargs)
        INITS.append(dict(kwargs))
        EVENTS.append("LLM")

    def _run(self, kind: str, prompts: list[str], params) -> list[_RequestOutput]:
        CALLS.append({"kind": kind, "n_prompts": len(prompts), "params": dict(getattr(params, "kwargs", {}))})
        PROMPTS.append(list(prompts))
        EVENTS.append(kind)
        if FAIL_ON_CALL is not None and len(CALLS) == FAIL_ON_CALL:
            raise RuntimeError(f"fake vllm: crashed on call {FAIL_ON_CALL}")
        return [_RequestOutput(_answer(p)) for p in prompts]

    def chat(self, messages, sampling_params=None, use_tqdm=True, **kwargs):
        conversations = messages if messages and isinstance(messages[0], list) else [messages]
        prompts = [turns[-1]["content"] for turns in conversations]
        return self._run("chat", prompts, sampling_params)

    def generate(self, prompts, sampling_params=None, use_tqdm=True, **kwargs):
        return self._run("generate", [prompts] if isinstance(prompts, str) else list(prompts), sampling_params)
