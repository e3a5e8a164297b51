"""Test stand-ins for the backends a stage needs (LLM, text encoder, POS tagger, captioner, audio-text model,
LLM cache), one of each, deterministic and instant. Every test takes its fakes from here."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
    monkeypatch.setitem(sys.modules, name, None)  # recorded as absent: the fake is removed after the test
    del sys.modules[name]
    module = importlib.import_module(name)
    assert module.__file__.startswith(str(FAKE_PACKAGES)), f"the real {name} was imported"
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
    """The recording fake of llama_cpp (``tests/fake_packages/llama_cpp``): INITS, CALLS, RESPOND."""
    module = _use_fake_package(monkeypatch, "llama_cpp")
    module.INITS.clear()
    module.CALLS.clear()
    module.RESPOND = None
    return module


class LockedAfterInserts:
    """A stand-in for the ``duckdb`` module of ``and_engine.store.side_db``: real connections, except that every
    INSERT after the first ``allowed`` (counted over all connections) fails as if another process held the
    file's lock, until ``release()``. ``monkeypatch.setattr(side_db, "duckdb", LockedAfterInserts(1))``."""

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


class KillOnce:
    """A target model's ``preprocess`` that SIGKILLs the first process other than ``driver_pid`` to call it
    ``after`` times, once per ``flag`` file (which then holds that pid): a Ray worker killed mid-stage.
    Register this module with ``ray.cloudpickle.register_pickle_by_value`` so workers get it by value."""

    def __init__(self, preprocess: Callable, flag: Path, driver_pid: int, after: int = 2):
        self.preprocess, self.flag, self.driver_pid, self.after = preprocess, Path(flag), driver_pid, after
        self.calls = 0

    def __call__(self, waveforms):
        import os
        import signal

        self.calls += 1
        if os.getpid() != self.driver_pid and self.calls >= self.after and not self.flag.exists():
            self.flag.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return self.preprocess(waveforms)


class _RuleEngineStage:
    """The engine stage of the fake ``ray.data.llm``: vLLM rows (messages) -> generated_text, by the rule LLM."""

    def __call__(self, batch):
        from and_engine.backends.llm_rule import RuleLLM

        prompts = [m[0]["content"] for m in batch["messages"]]
        return {**batch, "generated_text": np.array(RuleLLM().generate(prompts), dtype=object)}


class _HttpStage:
    """The HTTP stage of the fake ``ray.data.llm``: rows (payload) -> http_response, POSTed to ``url``."""

    def __init__(self, url: str, headers: dict):
        self.url, self.headers = url, headers

    def __call__(self, batch):
        import json
        import urllib.request

        out = []
        for payload in batch["payload"]:
            req = urllib.request.Request(self.url, data=json.dumps(payload, default=_plain).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **self.headers})
            with urllib.request.urlopen(req, timeout=30) as resp:
                out.append(json.loads(resp.read()))
        return {**batch, "http_response": np.array(out, dtype=object)}


def _plain(value):
    """numpy values in a Ray row -> JSON."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def fake_ray_llm():
    """A stand-in for ``ray.data.llm`` (needs ``ray[llm]``, GPU-only here): its two processor configs record
    their keyword arguments (``CONFIGS``); ``build_processor`` chains preprocess -> a fake engine stage
    (vLLM: the rule LLM; HTTP: a real POST to ``url``) -> postprocess as real Ray Data maps."""
    import types

    module = types.ModuleType("ray.data.llm")
    module.CONFIGS = []

    def config(kind):
        def make(**kwargs):
            module.CONFIGS.append((kind, kwargs))
            return types.SimpleNamespace(kind=kind, **kwargs)
        return make

    module.vLLMEngineProcessorConfig = config("vllm")
    module.HttpRequestProcessorConfig = config("http")

    def build_processor(cfg, preprocess=None, postprocess=None):
        def run(ds):
            ds = ds.map(preprocess)
            if cfg.kind == "vllm":
                ds = ds.map_batches(_RuleEngineStage, batch_size=cfg.batch_size, batch_format="numpy",
                                    compute=_actors(cfg.concurrency))
            else:
                ds = ds.map_batches(_HttpStage, fn_constructor_args=(cfg.url, cfg.headers), batch_size=cfg.batch_size,
                                    batch_format="numpy", compute=_actors(cfg.concurrency))
            return ds.map(postprocess)
        return run

    module.build_processor = build_processor
    return module


def _actors(n: int):
    from ray.data import ActorPoolStrategy

    return ActorPoolStrategy(size=n)


@contextmanager
def ray_unimportable() -> Iterator[None]:
    """Inside: ``import ray`` raises ModuleNotFoundError and ``importlib.util.find_spec("ray")`` is None, as on
    a machine without Ray (``sys.modules["ray"] = None``); the Ray modules loaded before are put back after."""
    names = [k for k in sys.modules if k == "ray" or k.startswith("ray.")]
    saved = {k: sys.modules.pop(k) for k in names}
    sys.modules["ray"] = None
    try:
        yield
    finally:
        sys.modules.pop("ray", None)
        sys.modules.update(saved)


class ClipIdAudio:
    """An audio-text model over "waveforms" that are clip ids ((n, 1) arrays): the embeddings of those clips among
    ``audio.audio_embeddings`` of every clip (for a model, like ``LabelAudioText``, that embeds all clips at once)."""

    def __init__(self, audio):
        self.audio = audio

    def audio_embeddings(self, waveforms: np.ndarray) -> np.ndarray:
        return self.audio.audio_embeddings(None)[np.asarray(waveforms)[:, 0].astype(int)]

    def text_embeddings(self, texts):
        return self.audio.text_embeddings(texts)

    def describe(self) -> dict:
        return self.audio.describe()


def fixture_scorers(store):
    """The live scorers (``explorer.live_scores.Scorers``) the app fixture's scores were computed with: word vectors
    on the captions, the label model on the clips (``tests/_app_fixture.py``)."""
    from and_engine.explorer.live_scores import Scorers

    clips = store.read("clips", ["clip_id", "rel_path", "label"], order_by=["clip_id"])
    where = dict(zip(clips["rel_path"], clips["clip_id"]))
    return Scorers({"embedding": WordVectorEncoder(), "audio-text": ClipIdAudio(LabelAudioText(clips["label"]))},
                   lambda paths: np.array([[where[p]] for p in paths], dtype=np.float64))


def kill_inside_commit(stage: str, who: str = "build") -> None:
    """Patch ``ResultsStore`` so this process SIGKILLs itself inside the transaction of the first step of
    ``stage``: right after its first table's insert, before COMMIT (the worst moment for consistency)."""
    import os
    import signal

    from and_engine.store.results import ResultsStore

    original_commit, original_insert = ResultsStore.commit_step, ResultsStore._insert_rows

    def commit_step(self, run_id, step_stage, *args, **kwargs):
        self._crash_armed = step_stage == stage
        return original_commit(self, run_id, step_stage, *args, **kwargs)

    def insert_rows(self, table, tbl):
        original_insert(self, table, tbl)
        if getattr(self, "_crash_armed", False):
            print(f"killing the {who} inside stage {stage!r} after inserting into {table!r}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    ResultsStore.commit_step, ResultsStore._insert_rows = commit_step, insert_rows
