"""Local LLM backends: ``llama-cpp`` (GGUF), ``transformers`` (directory or GGUF, CPU/GPU), ``vllm`` (GPU).

Each takes an ``LLMConfig`` (``model`` = the file or directory), loads lazily on the first ``generate``
and sends every prompt as one user chat turn. Temperature 0 means greedy decoding. Made by
``registry.make("llm", "llama-cpp" | "transformers" | "vllm", options)`` through the ``create_*`` factories.
Device and weights: ``llm.device`` (transformers, llama-cpp: ``n_gpu_layers`` offloaded on CUDA), ``llm.dtype``
(transformers, vllm; ``auto`` = bfloat16 on CUDA, float32 on CPU) and vLLM's engine settings (``vllm_engine_args``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from and_engine.backends.llm import check_sampling, sampling_params
from and_engine.backends.registry import LLMConfigError, LLMError
from and_engine.config import LLMConfig
from and_engine.devices import DeviceError, check_transformers, resolve_device, weight_dtype
from and_engine.model_identity import model_identity


def _model_path(cfg: LLMConfig, what: str) -> Path:
    """``llm.model`` -> an existing path; ``package:<pkg>/<file>`` names a file shipped inside a package."""
    if not cfg.model:
        raise LLMConfigError(f"llm.model must name {what} for backend {cfg.backend!r}")
    if cfg.model.startswith("package:"):
        pkg, _, rel = cfg.model[len("package:") :].partition("/")
        spec = importlib.util.find_spec(pkg) if pkg.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise LLMConfigError(f"llm.model: package {pkg!r} is not installed (from {cfg.model!r})")
        path = Path(list(spec.submodule_search_locations)[0]) / rel
    else:
        path = Path(cfg.model).expanduser()
    if not path.exists():
        raise LLMConfigError(f"llm.model: {path} does not exist (backend {cfg.backend!r} needs {what})")
    return path


def _missing(package: str, hint: str) -> LLMError:
    return LLMError(f"the {package!r} package is not installed; {hint}")


class _LocalLLM:
    backend = ""
    weights: tuple[str, ...] = ()  # the LLMConfig weights settings this engine reads (dtype, quantization)

    def __init__(self, cfg: LLMConfig):
        check_sampling(cfg)
        self.cfg = cfg
        self._engine = None

    def describe(self) -> dict:
        """Provenance and cache identity: a local model is named by its content (``model_identity``), so two
        files with the same name never share cached answers; a hub id is kept whole."""
        try:
            model = model_identity(_model_path(self.cfg, "a model"))
        except LLMConfigError:
            model = self.cfg.model
        params = sampling_params(self.cfg)
        # weights settings that change answers enter the cache identity when set (defaults keep old cache keys)
        default = LLMConfig()
        params.update({k: getattr(self.cfg, k) for k in self.weights if getattr(self.cfg, k) != getattr(default, k)})
        return {"backend": self.backend, "model": model, "params": params}

    def _device(self) -> str:
        try:
            return resolve_device(self.cfg.device, "llm.device")
        except DeviceError as exc:
            raise LLMConfigError(str(exc)) from exc


class LlamaCppLLM(_LocalLLM):
    """A GGUF file through llama-cpp-python, always single-threaded (n_threads=1, n_threads_batch=1)."""

    backend = "llama-cpp"
    n_ctx = 4096

    def _load(self):
        if self._engine is None:
            path = _model_path(self.cfg, "a .gguf file")
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise _missing("llama_cpp", "pip install -r requirements-llamacpp.txt (compiles; see "
                               "docs/backends.md)") from exc
            gpu_layers = self.cfg.n_gpu_layers if self._device().startswith("cuda") else 0
            self._engine = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=1, n_threads_batch=1,
                                 n_gpu_layers=gpu_layers, seed=self.cfg.seed, verbose=False)
        return self._engine

    def generate(self, prompts: list[str]) -> list[str]:
        llm, c = self._load(), self.cfg
        out = []
        for p in prompts:
            res = llm.create_chat_completion(messages=[{"role": "user", "content": p}], temperature=c.temperature,
                                             top_p=c.top_p, max_tokens=c.max_new_tokens, seed=c.seed)
            out.append(res["choices"][0]["message"]["content"] or "")
        return out


class TransformersLLM(_LocalLLM):
    """A causal LM via transformers: a model directory, or a .gguf file (de-quantised, ``gguf_file=``)."""

    backend = "transformers"
    weights = ("dtype",)

    def _load(self):
        if self._engine is None:
            path = _model_path(self.cfg, "a model directory or a .gguf file")
            from transformers import AutoModelForCausalLM, AutoTokenizer

            check_transformers()
            device = self._device()
            try:
                dtype = weight_dtype(self.cfg.dtype, device, "llm.dtype")
            except DeviceError as exc:
                raise LLMConfigError(str(exc)) from exc
            src, kw = (str(path.parent), {"gguf_file": path.name}) if path.suffix == ".gguf" else (str(path), {})
            try:
                tok = AutoTokenizer.from_pretrained(src, **kw)
                model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, **kw)
            except (OSError, ValueError) as exc:
                raise LLMError(f"transformers cannot load {path}: {exc}") from exc
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self._engine = (tok, model.to(device).eval(), device)
        return self._engine

    def _chat(self, tok, prompt: str) -> str:
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
        return prompt + "\n"

    def generate(self, prompts: list[str]) -> list[str]:
        import torch

        tok, model, device = self._load()
        c, out = self.cfg, []
        sample = c.temperature > 0
        for s in range(0, len(prompts), max(c.batch_size, 1)):
            texts = [self._chat(tok, p) for p in prompts[s : s + c.batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            torch.manual_seed(c.seed)
            kw = {"do_sample": True, "temperature": c.temperature, "top_p": c.top_p} if sample else {"do_sample": False}
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=c.max_new_tokens, pad_token_id=tok.pad_token_id, **kw)
            new = ids[:, enc["input_ids"].shape[1] :]
            out.extend(tok.batch_decode(new, skip_special_tokens=True))
        return [o.strip() for o in out]


def vllm_engine_args(cfg: LLMConfig) -> dict:
    """The ``vllm.LLM(...)`` keyword arguments of an LLM configuration (0 / "" = leave vLLM's default)."""
    if cfg.tensor_parallel_size < 1 or not 0 < cfg.gpu_memory_utilization <= 1 or cfg.max_model_len < 0 \
            or cfg.max_num_seqs < 0:
        raise LLMConfigError("llm: tensor_parallel_size >= 1, 0 < gpu_memory_utilization <= 1, max_model_len >= 0 "
                             f"and max_num_seqs >= 0 are needed, got {cfg.tensor_parallel_size}, "
                             f"{cfg.gpu_memory_utilization}, {cfg.max_model_len}, {cfg.max_num_seqs}")
    if cfg.dtype not in ("auto", "bfloat16", "float16", "float32"):
        raise LLMConfigError(f"llm.dtype must be auto, bfloat16, float16 or float32, got {cfg.dtype!r}")
    args = {"model": cfg.model, "enable_prefix_caching": True, "seed": cfg.seed, "dtype": cfg.dtype,
            "tensor_parallel_size": cfg.tensor_parallel_size, "gpu_memory_utilization": cfg.gpu_memory_utilization}
    args.update({k: v for k, v in (("max_model_len", cfg.max_model_len), ("max_num_seqs", cfg.max_num_seqs),
                                   ("quantization", cfg.quantization)) if v})
    return args


class VllmLLM(_LocalLLM):
    """vLLM offline batched generation with prefix caching (GPU only; tested here against a recording fake)."""

    backend = "vllm"
    weights = ("dtype", "quantization")

    def _load(self):
        if self._engine is None:
            args = vllm_engine_args(self.cfg)
            try:
                from vllm import LLM as VLLMEngine
            except ImportError as exc:
                raise _missing("vllm", "it needs a CUDA GPU: pip install -r requirements-gpu.txt") from exc
            self._engine = VLLMEngine(**args)
        return self._engine

    def generate(self, prompts: list[str]) -> list[str]:
        engine = self._load()
        from vllm import SamplingParams

        c = self.cfg
        params = SamplingParams(temperature=c.temperature, top_p=c.top_p, max_tokens=c.max_new_tokens, seed=c.seed)
        chats = [[{"role": "user", "content": p}] for p in prompts]
        results = engine.chat(chats, params, use_tqdm=False)
        return [r.outputs[0].text if r.outputs else "" for r in results]


def create_llama_cpp(argument: str, cfg: LLMConfig) -> LlamaCppLLM:
    return LlamaCppLLM(cfg)


def create_transformers(argument: str, cfg: LLMConfig) -> TransformersLLM:
    return TransformersLLM(cfg)


def create_vllm(argument: str, cfg: LLMConfig) -> VllmLLM:
    return VllmLLM(cfg)
