"""A recording fake of ``llama_cpp`` (``fakes.use_fake_llama_cpp``): ``Llama(**kwargs)`` records its arguments,
each chat completion its messages and settings (``CALLS``); ``RESPOND(prompt) -> answer`` scripts the answers."""

from __future__ import annotations

INITS: list[dict] = []
CALLS: list[dict] = []
RESPOND = None  # None: every answer is "an answer"


class Llama:
    def __init__(self, **kwargs):
        INITS.append(dict(kwargs))

    def create_chat_completion(self, messages, **kwargs):
        CALLS.append({"messages": messages, **kwargs})
        answer = RESPOND(messages[-1]["content"]) if RESPOND is not None else "an answer"
        return {"choices": [{"message": {"content": answer}}]}
