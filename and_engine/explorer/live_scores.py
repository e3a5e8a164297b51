"""Scores of new explanations of one neuron on the spot, as the scores stage scores the stored ones.

``make_scorers(config)``: the build's scorer models by name (``scores.scorers``, ``scores.text_encoder``,
``scores.audio_text_model``), made as ``pipeline/steps_scores`` makes them. ``score_texts(store, scorers, model,
layer, neuron, texts)``: the neuron's stored scoring set (``scoring_sets``: its clips and which of them
activate), its stored activations and, per scorer, the captions (embedding) or the audio (audio-text) of those
clips, through the stage's own one-neuron function (``stages.scores.score_on_clips``) -> ``explanation_scores``
rows. A stored explanation scored here gets its stored scores (up to a tie that float rounding splits: a tie
counts 1/2 in the AUC).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from and_engine.config import Config
from and_engine.store.results import ResultsStore

MEMO = 256  # neurons whose scoring clips stay embedded


@dataclass
class Scorers:
    """{scorer: model}: ``embedding`` -> a text encoder (``encode``), ``audio-text`` -> an audio-text model
    (``audio_embeddings``, ``text_embeddings``); ``load_audio(rel_paths) -> (n, samples)`` 16 kHz waveforms."""

    models: dict[str, object]
    load_audio: Callable[[list[str]], np.ndarray] | None = None
    _clips: OrderedDict = field(default_factory=OrderedDict)  # (scorer, clip ids) -> clip embeddings


def make_scorers(config: Config) -> Scorers:
    """The build's scorers without an LLM (``config.scores.scorers``), made as the scores stage makes them (on
    the backends' default device), with the probing set's audio decoded as the build decodes it (16 kHz)."""
    from and_engine.backends.registry import CAPTION_SAMPLE_RATE, make
    from and_engine.explorer.live import audio_root
    from and_engine.explorer.media import load_clip

    cfg, models = config.scores, {}
    if "embedding" in cfg.scorers:
        models["embedding"] = make("text_encoder", cfg.text_encoder)
    if "audio-text" in cfg.scorers:
        models["audio-text"] = make("audio_text", cfg.audio_text_model,
                                    {"text_encoder": make("text_encoder", "minilm")})
    root, seconds = audio_root(config), config.probing_set.clip_seconds

    def load(rel_paths: list[str]) -> np.ndarray:
        return np.stack([load_clip(root, p, CAPTION_SAMPLE_RATE, seconds) for p in rel_paths])

    return Scorers(models, load)


def _clip_embeddings(store: ResultsStore, scorers: Scorers, scorer: str, ids: list[int]) -> np.ndarray:
    key = (scorer, tuple(ids))
    if key not in scorers._clips:
        if scorer == "embedding":
            caps = store.read("captions", ["clip_id", "caption"], clip_id=ids).set_index("clip_id")["caption"]
            emb = scorers.models[scorer].encode([str(caps.get(i) or "") for i in ids])
        else:
            paths = store.read("clips", ["clip_id", "rel_path"], clip_id=ids).set_index("clip_id")["rel_path"]
            emb = scorers.models[scorer].audio_embeddings(scorers.load_audio([paths[i] for i in ids]))
        scorers._clips[key] = emb
        while len(scorers._clips) > 2 * MEMO:
            scorers._clips.popitem(last=False)
    return scorers._clips[key]


def _embed(scorers: Scorers, scorer: str):
    model = scorers.models[scorer]
    return model.encode if scorer == "embedding" else model.text_embeddings


def score_texts(store: ResultsStore, scorers: Scorers, model: str, layer: str, neuron: int,
                texts: dict[str, str]) -> pd.DataFrame:
    """{label: explanation} of one neuron -> ``explanation_scores`` rows (``source`` = the label) per scorer; blank
    texts get none, and a database without the neuron's scoring set (built without scores) gives no rows."""
    from and_engine.explorer.queries import activations
    from and_engine.stages.scores import COLUMNS, score_on_clips, score_rows

    texts = {k: v for k, v in texts.items() if str(v).strip()}
    got = store.read("scoring_sets", ["clip_ids", "activating"], model=model, layer=layer, neuron=int(neuron))
    if got.empty or not texts:
        return pd.DataFrame(columns=COLUMNS)
    ids = [int(i) for i in got["clip_ids"].iloc[0]]
    activating = np.asarray(got["activating"].iloc[0], dtype=bool)
    u = activations(store, model, layer, neuron)[ids]
    expl = pd.DataFrame({"model": model, "layer": layer, "neuron": int(neuron), "source": list(texts)})
    frames = []
    for scorer in scorers.models:
        auc, r = score_on_clips(list(texts.values()), _embed(scorers, scorer),
                                _clip_embeddings(store, scorers, scorer, ids), activating, u)
        frames.append(score_rows(expl, scorer, auc, r, None, np.full(len(expl), len(ids))))
    return pd.concat(frames, ignore_index=True)


def side_by_side(stored: pd.DataFrame, live: pd.DataFrame) -> pd.DataFrame:
    """``scores.neuron_scores`` rows (the stored explanations) + ``score_texts`` rows of the same sources (S_h, S_h^c
    by another summariser) -> one row per source and origin (``stored`` / ``live``), one column per scorer and
    metric (``embedding auc``: the neuron page's names and tooltips); empty when either side has no scores."""
    from and_engine.store.schema import SCORE_METRICS

    if stored.empty or live.empty:
        return pd.DataFrame()
    long = live.melt(id_vars=["source", "scorer"], value_vars=list(SCORE_METRICS)).dropna(subset=["value"])
    wide = long.assign(column=long["scorer"] + " " + long["variable"]).pivot_table(
        index="source", columns="column", values="value", aggfunc="first").reset_index()
    cols = [c for c in wide.columns if c != "source" and c in stored.columns]
    both = pd.concat([stored.loc[stored["source"].isin(wide["source"]), ["source", *cols]].assign(origin="stored"),
                      wide[["source", *cols]].assign(origin="live")], ignore_index=True)
    return both.sort_values(["source", "origin"], ascending=[True, False], kind="stable")[
        ["source", "origin", *cols]].reset_index(drop=True)
