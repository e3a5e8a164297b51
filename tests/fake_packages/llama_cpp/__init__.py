"""A recording fake of ``llama_cpp`` (``fakes.use_fake_llama_cpp``): ``Llama(**kwargs)`` records its arguments."""

from __future__ import annotations

INITS: list[dict] = []


class Llama:
    def __init__(self, **kwargs):
        INITS.append(dict(kwargs))

    def create_chat_completion(self, messages, **kwargs):
        return {"choices": [{"message": {"content": "an answer"}}]}
