"""Test stand-ins for the backends a stage needs (LLM, text encoder, POS tagger, captioner, audio-text model,
LLM cache), one of each, deterministic and instant. Every test takes its fakes from here."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np


class ScriptedLLM:
    """An LLM backend answering from a list (cycling) or a function of the prompt; records every prompt,
    counts calls, and raises after ``fail_after`` calls (a crashing backend)."""

    def __init__(self, answers: Sequence[str] | Callable[[str], str], fail_after: int | None = None):
        self.answers, self.fail_after, self.calls, self.prompts = answers, fail_after, 0, []

    def describe(self) -> dict:
        return {"backend": "scripted", "model": "scripted-v1", "params": {"temperature": 0.0}}

    def generate(self, prompts: list[str]) -> list[str]:
        out = []
        for prompt in prompts:
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise RuntimeError("scripted backend crashed")
            answer = self.answers(prompt) if callable(self.answers) else self.answers[self.calls % len(self.answers)]
            out.append(answer)
            self.prompts.append(prompt)
            self.calls += 1
        return out


class DictCache:
    """An in-memory stand-in for the store's llm_cache methods (cache_get / cache_put), counting puts."""

    def __init__(self):
        self.rows: dict[str, dict] = {}
        self.puts = 0

    def get(self, keys: list[str]) -> dict[str, str]:
        return {k: self.rows[k]["response"] for k in keys if k in self.rows}

    def put(self, rows: list[dict]) -> None:
        self.puts += 1
        for r in rows:
            self.rows.setdefault(r["cache_key"], r)


class WordVectorEncoder:
    """A deterministic text encoder: each text = normalised sum of fixed random vectors of its words."""

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self.dim, self.seed, self.calls = dim, seed, 0

    def _word(self, word: str) -> np.ndarray:
        return np.random.default_rng([self.seed, zlib.crc32(word.encode())]).standard_normal(self.dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in str(text).lower().replace("_", " ").split():
                out[i] += self._word(w.strip(".,:;!?'\""))
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def describe(self) -> dict:
        return {"backend": "word-vectors", "model": "test", "params": {"dim": self.dim}}


class LexiconTagger:
    """A POS tagger with a fixed word -> Penn tag table (``TAGS`` updated with ``extra``): '.' for punctuation,
    NN for any other word."""

    TAGS = {"the": "DT", "a": "DT", "is": "VBZ", "are": "VBP", "barking": "VBG", "not": "RB", "no": "DT",
            "loud": "JJ", "clear": "JJ", "high-pitched": "JJ", "muffled": "VBN", "other": "JJ", "sharp": "JJ",
            "running": "JJ", "in": "IN", "with": "IN", "and": "CC", "very": "RB", "louder": "JJR"}

    def __init__(self, extra: Mapping[str, str] | None = None) -> None:
        self.tags = {**self.TAGS, **(extra or {})}

    def tag_batch(self, token_lists: list[list[str]]) -> list[list[str]]:
        return [[self.tags.get(t.lower(), "." if not t.isalnum() and "-" not in t else "NN") for t in toks]
                for toks in token_lists]

    def describe(self) -> dict:
        return {"backend": "lexicon", "model": "test", "params": {"words": len(self.tags)}}


class LabelCaptioner:
    """A captioner that knows each clip's caption by clip id (as a perfect audio-language model would) and
    passes the measured acoustics through as the ``acoustic_features`` rows."""

    def __init__(self, captions: Mapping[int, str]) -> None:
        self.captions = dict(captions)

    def caption(self, waveforms: np.ndarray, sample_rate: int, context=None):
        from and_engine.backends.registry import CaptionResult
        from and_engine.store.schema import columns

        ids = [int(i) for i in context.clip_ids]
        feats = context.features.reset_index(drop=True).assign(clip_id=ids, tags="")  # no tagger labels
        return CaptionResult([self.captions[i] for i in ids], feats[columns("acoustic_features")[1:]])

    def describe(self) -> dict:
        return {"backend": "label-captioner", "model": "test", "params": {}}


class LabelAudioText:
    """An audio-text model (TAB) that scores a clip against a concept by its label: 1 for its own class,
    plus seeded noise in [0, 0.2) everywhere (ties broken)."""

    sample_rate = 16000

    def __init__(self, labels: Sequence[str], seed: int = 0) -> None:
        self.labels, self.seed = list(labels), seed

    def similarity(self, waveforms: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
        own = (np.asarray(self.labels)[:, None] == np.asarray(concepts)[None, :]).astype(np.float64)
        return own + 0.2 * np.random.default_rng(self.seed).random(own.shape)

    def audio_embeddings(self, waveforms: np.ndarray) -> np.ndarray:
        """Each clip's label one-hot over the distinct labels (N, L): the clip "audio" says what it is."""
        names = sorted(set(self.labels))
        return (np.asarray(self.labels)[:, None] == np.asarray(names)[None, :]).astype(np.float64)

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """(M, L): 1 for every label whose words the text contains."""
        names = sorted(set(self.labels))
        return np.array([[float(n.replace("_", " ") in str(t).lower().replace("_", " ")) for n in names]
                         for t in texts])

    def describe(self) -> dict:
        return {"backend": "label-audio-text", "model": "test", "params": {"seed": self.seed}}



class ScriptedTagger:
    """An audio tagger (``registry.AudioTagger``) with fixed scores per window: ``windows[i]`` is clip i's
    (W, C) array over ``class_names`` (AudioSet display names)."""

    def __init__(self, class_names: Sequence[str], windows: Sequence[np.ndarray]) -> None:
        self.class_names, self.windows = list(class_names), [np.asarray(w, dtype=np.float32) for w in windows]

    def window_scores(self, waveforms_16k: np.ndarray) -> np.ndarray:
        return np.stack(self.windows[: len(waveforms_16k)])

    def scores(self, waveforms_16k: np.ndarray) -> np.ndarray:
        return self.window_scores(waveforms_16k).mean(axis=1)

    def describe(self) -> dict:
        return {"backend": "scripted-tagger", "model": "test", "params": {}}


def memo_word_vectors(dim: int = 384):
    """The real text encoders' memo (``text_encoders._MemoEncoder``) in front of ``WordVectorEncoder``
    embeddings; ``n_embedded`` counts the texts it had to embed, ``last`` lists the latest call's."""
    from and_engine.backends.text_encoders import _MemoEncoder

    class MemoWordVectors(_MemoEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.vectors, self.n_embedded, self.last = WordVectorEncoder(dim), 0, []

        def _embed(self, texts: list[str]) -> np.ndarray:
            self.n_embedded, self.last = self.n_embedded + len(texts), texts
            return self.vectors.encode(texts)

        def describe(self) -> dict:
            return self.vectors.describe()

    return MemoWordVectors()


FAKE_PACKAGES = Path(__file__).parent / "fake_packages"


def _use_fake_package(monkeypatch, name: str):
    """Put ``tests/fake_packages`` first on sys.path and import the recording fake ``name`` afresh."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(FAKE_PACKAGES))
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    module = importlib.import_module(name)
    assert module.__file__.startswith(str(FAKE_PACKAGES)), f"the real {name} was imported"
    monkeypatch.setitem(sys.modules, name, module)
    return module


def use_fake_vllm(monkeypatch):
    """The recording fake of vllm (``tests/fake_packages/vllm``): INITS, CALLS, EVENTS, ON_INIT, RESPOND."""
    module = _use_fake_package(monkeypatch, "vllm")
    module.reset()
    return module


def vllm_calls(vllm) -> list[tuple[str, int]]:
    """The fake vllm's calls as ``(kind, number of prompts)``, in order."""
    return [(c["kind"], c["n_prompts"]) for c in vllm.CALLS]


def use_fake_llama_cpp(monkeypatch):
    """The recording fake of llama_cpp (``tests/fake_packages/llama_cpp``): INITS."""
    module = _use_fake_package(monkeypatch, "llama_cpp")
    module.INITS.clear()
    return module


class LockedAfterInserts:
    """A stand-in for the ``duckdb`` module of ``and_engine.store.ratings``: real connections, except that every
    INSERT after the first ``allowed`` (counted over all connections) fails as if another process held the
    file's lock, until ``release()``. ``monkeypatch.setattr(ratings_module, "duckdb", LockedAfterInserts(1))``."""

    def __init__(self, allowed: int):
        import duckdb

        self._duckdb, self.allowed, self.inserts, self.locked = duckdb, allowed, 0, True
        self.IOException, self.TransactionException = duckdb.IOException, duckdb.TransactionException
        self.DuckDBPyConnection = duckdb.DuckDBPyConnection

    def release(self) -> None:
        self.locked = False

    def connect(self, *args, **kwargs):
        fake, con = self, self._duckdb.connect(*args, **kwargs)

        class Connection:
            def execute(self, sql: str, *params):
                if sql.lstrip().upper().startswith("INSERT"):
                    if fake.locked and fake.inserts >= fake.allowed:
                        raise fake.IOException("Could not set lock on file: held by another process")
                    fake.inserts += 1
                return con.execute(sql, *params)

            def close(self) -> None:
                con.close()

        return Connection()
