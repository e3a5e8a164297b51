"""Every backend kind behind one interface: its Protocol, its error classes, and a name -> factory registry.

``make(kind, name, options=None)`` -> a backend of ``kind`` (one of ``KINDS``):

* ``name``: a registered name, or ``<name>:<argument>`` for the names that take one (``clip:<dir>``,
  ``clap:<dir>``); ``parse_name`` splits it, once, here.
* ``options``: keyword settings (a mapping, or a dataclass such as the config's ``LLMConfig``), checked
  against the kind's options dataclass (``LLMConfig`` for ``llm``, ``CaptionsConfig`` for ``captioner``,
  ``AudioTextOptions``, ...); an unknown key is an error naming the known ones. New settings (device,
  precision) are new fields there; ``make``'s signature does not change.

Each factory is ``factory(argument: str, options) -> backend`` and lives next to its implementation; the
registry lists it as a ``"module:function"`` string imported on first use, so importing this module loads
nothing heavy (torch models, transformers, vllm, llama_cpp, open_clip). Every backend has
``describe() -> {"backend", "model", "params"}`` for provenance.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from and_engine.config import CaptionsConfig, LLMConfig

CAPTION_SAMPLE_RATE = 16000  # captioners take 16 kHz audio (YAMNet, Whisper-style feature extractors)


class BackendError(Exception):
    """Base of every backend error: an unknown name or option, a missing package or file, a failed call."""


class LLMError(BackendError, RuntimeError):
    """An LLM backend failed (missing package / file, server error after retries); the message says how."""


class LLMConfigError(BackendError, ValueError):
    """An LLM configuration is invalid (unknown backend, missing model path); the message names the field."""


class CaptionerError(BackendError, RuntimeError):
    """A captioner failed (missing package / model files); the message says how to fix it."""


class CaptionerConfigError(BackendError, ValueError):
    """A captions configuration is invalid; the message names the field."""


class TextEncoderError(BackendError, ValueError):
    """Unknown encoder name, missing checkpoint or package; the message names it."""


class AudioTextError(BackendError, ValueError):
    """Unknown model name, missing checkpoint, bad waveforms or concepts; the message names it."""


class TaggerError(BackendError, ValueError):
    """Unknown tagger name or a tagger that cannot load here; the message says which and why."""


@runtime_checkable
class LLM(Protocol):
    def generate(self, prompts: list[str]) -> list[str]:
        """Prompts -> answers, same length and order (one chat turn each)."""
        ...

    def describe(self) -> dict:
        """Provenance: {"backend", "model", "params"} (params = the sampling settings)."""
        ...


@runtime_checkable
class LLMExecutor(Protocol):
    """The execute part of plan -> execute -> ingest (``backends.llm.run_round``): one backend's whole
    request list in, chunks of answers out as they finish (the caller commits each to ``llm_cache``)."""

    def run(self, llm: LLM, prompts: list[str], chunk: int) -> Iterator[list[tuple[int, str]]]:
        """Prompts -> chunks of at most ``chunk`` (index into ``prompts``, answer), every index once."""
        ...

    def describe(self) -> dict:
        ...


@dataclass(frozen=True)
class CaptionContext:
    """What a captioner may know beyond the audio: clip ids and the probing set's measured features.

    ``features``: rows of ``and_engine.acoustics.measurements.measure_acoustics`` for these clips with a
    ``relative_loudness`` column computed against the whole probing set; None -> measured on this batch.
    """

    clip_ids: np.ndarray | None = None
    features: pd.DataFrame | None = None
    clip_seconds: float | None = None


@dataclass
class CaptionResult:
    """captions[i] describes clip i of the batch; ``features`` has the ``acoustic_features`` columns."""

    captions: list[str]
    features: pd.DataFrame = field(default_factory=pd.DataFrame)


@runtime_checkable
class Captioner(Protocol):
    def caption(self, waveforms: np.ndarray, sample_rate: int, context: CaptionContext | None = None) -> CaptionResult:
        """(n, samples) float audio -> n captions + their acoustic_features rows."""
        ...

    def describe(self) -> dict:
        ...


@runtime_checkable
class TextEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray:
        """n texts -> (n, d) float32, unit rows."""
        ...

    def describe(self) -> dict:
        ...


@runtime_checkable
class AudioTextModel(Protocol):
    sample_rate: int  # the rate ``similarity`` takes (16 kHz yamnet-labels, 48 kHz CLAP)

    def similarity(self, waveforms: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
        """(N, samples) float32 at ``sample_rate`` + M concepts -> (N, M) float64 scores."""
        ...

    def audio_embeddings(self, waveforms_16k: np.ndarray) -> np.ndarray:
        """(N, samples) at 16 kHz -> (N, D) float64, with ``similarity = audio @ text_embeddings(texts).T``."""
        ...

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """M texts -> (M, D) float64 (the other half of ``similarity``)."""
        ...

    def describe(self) -> dict:
        ...


@runtime_checkable
class POSTagger(Protocol):
    def tag_batch(self, token_lists: list[list[str]]) -> list[list[str]]:
        """Token lists -> Penn tag lists of the same lengths."""
        ...

    def describe(self) -> dict:
        ...


@runtime_checkable
class AudioTagger(Protocol):
    class_names: list[str]

    def scores(self, waveforms_16k: np.ndarray) -> np.ndarray:
        """(n, samples) at 16 kHz -> (n, n_classes) scores in [0, 1]."""
        ...

    def window_scores(self, waveforms_16k: np.ndarray) -> np.ndarray:
        """(n, samples) at 16 kHz -> (n, windows, n_classes) scores of each analysis window (over time)."""
        ...

    def describe(self) -> dict:
        ...


@dataclass(frozen=True)
class TextEncoderOptions:
    """Where and how fast a text encoder runs (never what it returns): config ``[device]``."""

    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    batch_size: int = 64  # texts per forward pass


@dataclass(frozen=True)
class AudioTextOptions:
    text_encoder: TextEncoder | None = None  # yamnet-labels embeds label texts with it; None = minilm
    batch_size: int = 16
    device: str = "cpu"  # clap: cpu | cuda | cuda:N | auto


@dataclass(frozen=True)
class TaggerOptions:
    """Settings of a POS or audio tagger (none yet)."""


@dataclass(frozen=True)
class ExecutorOptions:
    """Settings of an LLM executor (none yet; a cluster executor adds its address and resources here)."""


@dataclass(frozen=True)
class Backend:
    factory: str  # "module:function", called as function(argument, options); "" = no backend (make -> None)
    argument: str = ""  # what follows "<name>:" (e.g. "local checkpoint directory"); "" = the name takes none


@dataclass(frozen=True)
class Kind:
    title: str  # what one backend of this kind is called in messages
    field: str  # the config key naming it, prefixed to messages ("" when several keys do)
    error: type[BackendError]  # raised for an unknown name or option
    options: type  # the dataclass of settings a factory reads
    backends: dict[str, Backend]


_B = "and_engine.backends."
KINDS: dict[str, Kind] = {
    "llm": Kind("backend", "llm.backend", LLMConfigError, LLMConfig, {
        "rule": Backend(_B + "llm_rule:create"),
        "llama-cpp": Backend(_B + "llm_local:create_llama_cpp"),
        "transformers": Backend(_B + "llm_local:create_transformers"),
        "vllm": Backend(_B + "llm_local:create_vllm"),
        "openai": Backend(_B + "llm_openai:create"),
    }),
    "captioner": Kind("backend", "captions.backend", CaptionerConfigError, CaptionsConfig, {
        "features": Backend(_B + "captioner_features:create"),
        "audio-llm": Backend(_B + "captioner_audiollm:create"),
    }),
    "text_encoder": Kind("text encoder", "", TextEncoderError, TextEncoderOptions, {
        "minilm": Backend(_B + "text_encoders:create_minilm"),
        "minilm-l12": Backend(_B + "text_encoders:create_minilm_l12"),
        "sentence-transformers": Backend(_B + "text_encoders:create_sentence_transformer",
                                         "model id or local folder"),
        "clip": Backend(_B + "text_encoders:create_clip", "local transformers / open_clip checkpoint"),
    }),
    "audio_text": Kind("model", "module_a.audio_text_model", AudioTextError, AudioTextOptions, {
        "yamnet-labels": Backend(_B + "audio_text:create_yamnet_labels"),
        "clap": Backend(_B + "audio_text:create_clap", "local transformers / laion_clap checkpoint"),
    }),
    "pos_tagger": Kind("tagger", "module_c.tagger", TaggerError, TaggerOptions, {
        "auto": Backend(_B + "taggers:create_auto"),
        "nltk": Backend(_B + "taggers:create_nltk"),
        "spacy": Backend(_B + "taggers:create_spacy"),
        "textblob": Backend(_B + "taggers:create_textblob"),
    }),
    "audio_tagger": Kind("tagger", "captions.tagger", CaptionerConfigError, TaggerOptions, {
        "yamnet": Backend(_B + "audio_taggers:create_yamnet"),
        "none": Backend(""),  # descriptors only: make returns None
    }),
    "llm_executor": Kind("executor", "", LLMConfigError, ExecutorOptions, {
        "local": Backend(_B + "llm_exec:create_local"),
    }),
}


def parse_name(name: str) -> tuple[str, str]:
    """``clip:/ckpt`` -> ("clip", "/ckpt"); ``minilm`` -> ("minilm", "")."""
    base, _, argument = str(name).partition(":")
    return base, argument


def known(kind: str) -> list[str]:
    """The names ``make(kind, ...)`` accepts, as a user writes them (``clip:<local checkpoint directory>``)."""
    return [f"{n}:<{b.argument}>" if b.argument else n for n, b in _kind(kind).backends.items()]


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise BackendError(f"unknown backend kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind]


def _options(spec: Kind, name: str, options: Mapping[str, Any] | object | None) -> Any:
    names = [f.name for f in dataclasses.fields(spec.options)]
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        options = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    values = dict(options or {})
    prefix = f"{spec.field}: " if spec.field else ""
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise spec.error(f"{prefix}unknown option(s) {unknown} for {spec.title} {name!r}; known: {names}")
    if "backend" in names and values.setdefault("backend", name) != name:
        raise spec.error(f"{prefix}options name backend {values['backend']!r}, not {name!r}")
    return spec.options(**values)


def _resolve(kind: str, name: str, options: Mapping[str, Any] | object | None) -> tuple[Backend, str, Any]:
    spec = _kind(kind)
    base, argument = parse_name(name)
    backend = spec.backends.get(base)
    if backend is None or bool(argument) != bool(backend.argument):
        prefix = f"{spec.field}: " if spec.field else ""
        raise spec.error(f"{prefix}unknown {spec.title} {name!r}; known: {', '.join(known(kind))}")
    return backend, argument, _options(spec, name, options)


def check(kind: str, name: str, options: Mapping[str, Any] | object | None = None) -> None:
    """What ``make`` checks before it makes anything (the name, its argument, the options), without importing
    or loading the backend: a configuration is checked with it before a build runs."""
    _resolve(kind, name, options)


def make(kind: str, name: str, options: Mapping[str, Any] | object | None = None) -> Any:
    """Kind + backend name (+ settings: a mapping, or a dataclass such as ``LLMConfig``) -> the backend;
    models load lazily, on first use.

    Raises the kind's error class for an unknown name (listing the known ones) or an unknown option.
    """
    backend, argument, opts = _resolve(kind, name, options)
    if not backend.factory:
        return None
    module, _, function = backend.factory.partition(":")
    return getattr(importlib.import_module(module), function)(argument, opts)
