"""The ``ray`` LLM executor (``[execution] engine = "ray"``): one request list as a Ray Data dataset.

* ``vllm``: a ``ray.data.llm`` vLLM engine processor (``vLLMEngineProcessorConfig``: the backend's model and
  engine arguments, ``llm_local.vllm_engine_args``; ``[execution.llm]`` ``actors`` engine replicas, each on
  ``tensor_parallel_size`` GPUs; ``batch_size`` prompts per engine call) -- needs ``ray[data,llm]`` (GPU);
* ``openai``: a ``ray.data.llm`` HTTP request processor (``HttpRequestProcessorConfig``) against the
  backend's ``/v1/chat/completions``, ``actors`` concurrent clients;
* any other backend (``rule``, ``llama-cpp``, ``transformers``): the backend itself in ``actors`` actors
  (``ray_runtime.map_stream``), ``generate`` per batch -- what runs on a CPU machine.

Each answer comes back with its prompt's index; ``run`` yields them in chunks of ``chunk`` as batches
finish, and the driver commits each chunk to ``llm_cache`` (``backends.llm.execute``): a killed driver
loses at most a chunk, a retried batch never answers a prompt twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from and_engine.backends.registry import LLM, ExecutorOptions, LLMConfigError, LLMError
from and_engine.config import ExecutionConfig

PROCESSOR_BACKENDS = ("vllm", "openai")  # through ray.data.llm processors; the others run in actors


class LLMWorker:
    """One actor: the backend (made lazily, so loaded once per actor), ``generate`` per batch of prompts."""

    def __init__(self, llm: LLM):
        self.llm = llm

    def __call__(self, batch: dict) -> dict:
        prompts = [str(p) for p in batch["prompt"]]
        answers = self.llm.generate(prompts)
        if len(answers) != len(prompts):
            raise LLMError(f"{self.llm.describe()['backend']} returned {len(answers)} answers for {len(prompts)}")
        return {"index": batch["index"], "answer": list(answers)}


def _llm_api():
    try:
        import ray.data.llm as api
    except ImportError as exc:
        raise LLMError("the vllm / openai backends on Ray need ray.data.llm: pip install 'ray[data,llm]' "
                       "(requirements-gpu.txt)") from exc
    return api


def _messages(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def vllm_processor(api, cfg, execution: ExecutionConfig):
    """A vLLM engine processor for LLM config ``cfg``: rows {index, prompt} -> {index, answer}."""
    from and_engine.backends.llm_local import vllm_engine_args

    engine = vllm_engine_args(cfg)
    model = engine.pop("model")
    res = execution.llm
    config = api.vLLMEngineProcessorConfig(model_source=model, engine_kwargs=engine, concurrency=res.actors,
                                           batch_size=res.batch_size or 64)
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_new_tokens,
                "seed": cfg.seed}
    return _build(api, config,
                  lambda row: {"index": row["index"], "messages": _messages(row["prompt"]),
                               "sampling_params": sampling},
                  lambda row: {"index": row["index"], "answer": row.get("generated_text") or ""})


def http_processor(api, llm, execution: ExecutionConfig):
    """An HTTP request processor for an ``openai`` backend: rows {index, prompt} -> {index, answer}."""
    import os

    cfg, res = llm.cfg, execution.llm
    headers = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]} if os.environ.get("OPENAI_API_KEY") else {}
    config = api.HttpRequestProcessorConfig(url=llm.url, headers=headers, concurrency=res.actors,
                                            batch_size=res.batch_size or 64, max_retries=llm.retries)
    body = {"model": cfg.model, "temperature": cfg.temperature, "top_p": cfg.top_p,
            "max_tokens": cfg.max_new_tokens, "seed": cfg.seed}
    return _build(api, config,
                  lambda row: {"index": row["index"], "payload": {**body, "messages": _messages(row["prompt"])}},
                  lambda row: {"index": row["index"], "answer": _content(row["http_response"])})


def _content(response: Any) -> str:
    try:
        return response["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"ray http processor: unexpected response {str(response)[:300]}") from exc


def _build(api, config, preprocess, postprocess):
    build = getattr(api, "build_processor", None) or api.build_llm_processor  # renamed in Ray 2.5x
    return build(config, preprocess=preprocess, postprocess=postprocess)


class RayExecutor:
    """Runs a request list on Ray (``session`` on first use): processors for vllm / openai, actors otherwise."""

    def __init__(self, execution: ExecutionConfig):
        self.execution = execution

    def describe(self) -> dict:
        return {"backend": "ray", "model": "", "params": {}}

    def _answers(self, llm: LLM, prompts: list[str]) -> Iterator[dict]:
        from and_engine.ray_runtime import map_stream, session

        rows = [{"index": i, "prompt": p} for i, p in enumerate(prompts)]
        name = llm.describe()["backend"]
        if name not in PROCESSOR_BACKENDS:
            batch = getattr(getattr(llm, "cfg", None), "batch_size", 8)
            yield from map_stream(self.execution, self.execution.llm, rows, LLMWorker, (llm,), batch)
            return
        ray, api = session(self.execution), _llm_api()
        processor = vllm_processor(api, llm.cfg, self.execution) if name == "vllm" else \
            http_processor(api, llm, self.execution)
        ds = processor(ray.data.from_items(rows))
        yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)

    def run(self, llm: LLM, prompts: list[str], chunk: int) -> Iterator[list[tuple[int, str]]]:
        """Prompts -> chunks of at most ``chunk`` (index, answer) as Ray's batches finish."""
        if chunk < 1:
            raise LLMConfigError(f"chunk must be >= 1, got {chunk}")
        if not prompts:
            return
        part: list[tuple[int, str]] = []
        for out in self._answers(llm, prompts):
            for i, answer in zip(out["index"], out["answer"]):
                part.append((int(i), str(answer)))
                if len(part) == chunk:
                    yield part
                    part = []
        if part:
            yield part


def create(argument: str, options: ExecutorOptions) -> RayExecutor:
    return RayExecutor(options.execution)
