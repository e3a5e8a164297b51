"""The ``audio-llm`` captioner: an audio-language model (Qwen2-Audio-Instruct class) via transformers.

The GPU path of SPEC section 4: the paper's prompt "Please describe the audio in detail." asked of
``Qwen2AudioForConditionalGeneration`` with its processor, loaded from a local directory (no hub),
batched, greedy decoding. Untested here with real weights (none ship in a package); the tests run the
same code on a tiny randomly initialised model of the same class. Acoustic features are still measured
(``acoustic_features`` table) so the Appendix C checks work whichever captioner ran.
Made by ``make("captioner", "audio-llm", options)`` (``options.model_path``: the local model directory).
Weights in bfloat16 on CUDA (Qwen models emit garbage in float16), float32 on CPU. ``release()`` frees the
model (and its GPU memory) once the captions are stored, before an LLM engine asks for the GPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from and_engine.acoustics.measurements import check_waveforms, measure_acoustics, relative_loudness
from and_engine.backends.registry import CaptionContext, CaptionerConfigError, CaptionerError, CaptionResult
from and_engine.config import CaptionsConfig
from and_engine.devices import DeviceError, check_transformers, free_memory, resolve_device, weight_dtype
from and_engine.model_identity import model_identity


class AudioLLMCaptioner:
    """Batched captions from a local Qwen2-Audio(-Instruct) checkpoint; loads on the first call."""

    def __init__(self, model_path: str, prompt: str = "Please describe the audio in detail.", batch_size: int = 8,
                 device: str = "cpu", max_new_tokens: int = 256):
        if batch_size < 1 or max_new_tokens < 1:
            raise CaptionerConfigError(
                f"batch_size and max_new_tokens must be >= 1, got {batch_size}, {max_new_tokens}")
        self.path, self.prompt, self.batch_size = Path(model_path).expanduser(), prompt, batch_size
        self.device, self.max_new_tokens = device, max_new_tokens
        self._loaded = None

    def describe(self) -> dict:
        return {"backend": "audio-llm", "model": model_identity(self.path),
                "params": {"prompt": self.prompt, "max_new_tokens": self.max_new_tokens, "decoding": "greedy"}}

    def _load(self):
        if self._loaded is None:
            if not (self.path / "config.json").is_file():
                raise CaptionerError(f"audio-llm captioner: {self.path} is not a local model directory "
                                     "(expected config.json, weights and processor files)")
            from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

            check_transformers()
            try:
                device = resolve_device(self.device, "captions.device")
            except DeviceError as exc:
                raise CaptionerConfigError(str(exc)) from exc
            try:
                processor = AutoProcessor.from_pretrained(str(self.path))
                model = Qwen2AudioForConditionalGeneration.from_pretrained(str(self.path),
                                                                           dtype=weight_dtype("auto", device))
            except (OSError, ValueError) as exc:
                raise CaptionerError(f"audio-llm captioner: cannot load {self.path}: {exc}") from exc
            processor.tokenizer.padding_side = "left"
            self._loaded = (processor, model.to(device).eval(), device)
        return self._loaded

    def release(self) -> None:
        """Drop the model and hand its GPU memory back (it loads again on the next ``caption``)."""
        if self._loaded is not None:
            self._loaded = None
            free_memory()

    def _batch(self, audio: list[np.ndarray], sample_rate: int) -> list[str]:
        import torch

        processor, model, device = self._load()
        chat = [{"role": "user", "content": [{"type": "audio", "audio_url": "clip"},
                                             {"type": "text", "text": self.prompt}]}]
        text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text] * len(audio), audio=audio, sampling_rate=sample_rate, return_tensors="pt",
                           padding=True).to(device)
        inputs["input_features"] = inputs["input_features"].to(model.dtype)
        pad = processor.tokenizer.pad_token_id
        with torch.no_grad():
            ids = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        new = ids[:, inputs["input_ids"].shape[1] :]
        return [" ".join(t.split()) for t in processor.batch_decode(new, skip_special_tokens=True)]

    def caption(self, waveforms: np.ndarray, sample_rate: int, context: CaptionContext | None = None) -> CaptionResult:
        """(n, samples) float audio at the processor's rate (16 kHz) -> n captions + their measured features."""
        arr = check_waveforms(waveforms, sample_rate).astype(np.float32)
        processor = self._load()[0]
        expected = processor.feature_extractor.sampling_rate
        if int(sample_rate) != expected:
            raise CaptionerError(f"audio-llm captioner needs {expected} Hz audio, got {sample_rate}")
        ctx = context or CaptionContext()
        captions: list[str] = []
        for s in range(0, len(arr), self.batch_size):
            captions.extend(self._batch(list(arr[s : s + self.batch_size]), sample_rate))
        feats = ctx.features
        if feats is None:
            feats = measure_acoustics(arr, sample_rate)
            feats["relative_loudness"] = relative_loudness(feats["rms_db"].to_numpy(), feats["rms_db"].to_numpy())
        feats = feats.reset_index(drop=True).copy()
        feats["clip_id"] = np.arange(len(arr)) if ctx.clip_ids is None else np.asarray(ctx.clip_ids)
        feats["tags"] = ""
        return CaptionResult(captions, feats)


def create(argument: str, cfg: CaptionsConfig) -> AudioLLMCaptioner:
    """The ``audio-llm`` captioner of a captions configuration (``model_path`` required)."""
    if cfg.batch_size < 1:
        raise CaptionerConfigError(f"captions.batch_size must be >= 1, got {cfg.batch_size}")
    if not cfg.model_path:
        raise CaptionerConfigError("captions.model_path must name a local Qwen2-Audio model directory "
                                   "for backend 'audio-llm'")
    return AudioLLMCaptioner(cfg.model_path, prompt=cfg.prompt, batch_size=cfg.batch_size, device=cfg.device,
                             max_new_tokens=cfg.max_new_tokens)
