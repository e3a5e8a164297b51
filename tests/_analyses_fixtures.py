"""Shared fixtures of the analyses tests: a tiny TargetModel with known weights and small tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from and_engine.models.base import LayerSpec, TargetModel

CLASSES = ["dog", "chirping_birds", "rain"]


def tiny_model() -> TargetModel:
    """Input (n, 3) 'waveforms' -> hidden Linear(3, 4) -> ReLU -> classifier Linear(4, 3).

    Hidden weights are the identity-like map [x0, x1, x2, x0 + x1] with zero bias, so for a
    non-negative input the hidden units are known exactly; the classifier is a fixed integer matrix.
    """
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor(CLASSIFIER_W))
        net[2].bias.copy_(torch.tensor([0.5, -0.5, 0.0]))
    specs = [LayerSpec("fc1", "0", "linear", 0, 4), LayerSpec("classifier", "2", "classifier", 1, 3)]
    return TargetModel(name="tiny", kind="tiny", sample_rate=100, class_names=list(CLASSES), module=net,
                       layer_specs=specs, preprocess=lambda w: torch.from_numpy(np.asarray(w, dtype=np.float32)))


CLASSIFIER_W = [[2.0, 0.0, 0.0, 1.0], [0.0, 3.0, 0.0, -1.0], [0.0, 0.0, 1.0, 0.5]]


def tiny_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Six non-negative (n, 3) inputs, two per class, and their labels (class indices)."""
    x = np.array([[2, 0, 0], [1, 0.5, 0], [0, 2, 0], [0.5, 1, 0], [0, 0, 3], [0, 0.5, 2]], dtype=np.float32)
    return x, np.array([0, 0, 1, 1, 2, 2])


def expected_logits(x: np.ndarray, zero_hidden: list[int]) -> np.ndarray:
    """Reference logits in numpy with the listed hidden units set to 0."""
    h = np.maximum(np.c_[x[:, 0], x[:, 1], x[:, 2], x[:, 0] + x[:, 1]], 0).astype(np.float64)
    h[:, zero_hidden] = 0
    return h @ np.array(CLASSIFIER_W).T + np.array([0.5, -0.5, 0.0])


def open_concepts() -> pd.DataFrame:
    """C_open rows for model 'tiny' over layer fc1 (and one classifier row, never a candidate)."""
    rows = [
        ("fc1", 0, "dogs", "NOUN"), ("fc1", 0, "loud", "ADJ"),
        ("fc1", 1, "birds", "NOUN"), ("fc1", 1, "high-pitched", "ADJ"),
        ("fc1", 2, "rainy", "ADJ"), ("fc1", 2, "loud", "ADJ"),
        ("fc1", 3, "chirping", "ADJ"), ("fc1", 3, "clear", "ADJ"),
        ("classifier", 0, "dog", "NOUN"),
    ]
    df = pd.DataFrame(rows, columns=["layer", "neuron", "word", "pos"])
    return df.assign(model="tiny", count=1)


def closed_concepts() -> pd.DataFrame:
    """DB (two similarity functions) and TAB top-5 rows for fc1's 4 neurons."""
    rows = []
    ranking = {0: ["dog", "rain", "chirping_birds"], 1: ["rain", "chirping_birds", "dog"],
               2: ["rain", "dog", "chirping_birds"], 3: ["chirping_birds", "dog", "rain"]}
    for neuron, concepts in ranking.items():
        for rank, c in enumerate(concepts, start=1):
            rows.append(("fc1", neuron, "DB", "cos3", rank, c, 1.0 / rank))
            rows.append(("fc1", neuron, "DB", "cos", rank, concepts[::-1][rank - 1], 1.0 / rank))
            rows.append(("fc1", neuron, "TAB", "wpmi", rank, c, 1.0 / rank))
    df = pd.DataFrame(rows, columns=["layer", "neuron", "method", "similarity", "rank", "concept", "score"])
    return df.assign(model="tiny")


def pos_counts() -> pd.DataFrame:
    """POS counts of fc1's 4 neurons (ties on purpose: nouns 2, 2, 1, 0)."""
    return pd.DataFrame({
        "model": "tiny", "layer": "fc1", "neuron": [0, 1, 2, 3], "n_nouns": [2, 2, 1, 0],
        "n_adjectives": [1, 3, 2, 2], "n_verbs": [0, 1, 0, 0], "n_prepositions": [1, 0, 0, 0],
        "summary_words": [10, 30, 20, 15], "n_basic_adjectives": [1, 1, 1, 1], "n_open_adjectives": [1, 1, 2, 2],
    })


def head_concepts(model: str) -> pd.DataFrame:
    """Classifier closed-set rows: DB/cos3 always right, DB/cos right at rank 2, TAB/wpmi right."""
    rows = []
    for n, truth in enumerate(CLASSES):
        others = [c for c in CLASSES if c != truth]
        for r, c in enumerate([truth, *others], start=1):
            rows += [("classifier", n, "DB", "cos3", r, c, 1.0 / r), ("classifier", n, "TAB", "wpmi", r, c, 1.0 / r)]
        rows += [("classifier", n, "DB", "cos", r, c, 1.0 / r) for r, c in enumerate([others[0], truth, others[1]], 1)]
    df = pd.DataFrame(rows, columns=["layer", "neuron", "method", "similarity", "rank", "concept", "score"])
    return df.assign(model=model)


def seed_store(store, models: dict[str, list[str]] | None = None) -> None:
    """Write the upstream tables the analyses read (as the earlier pipeline groups would).

    Six clips (two per class, all in fold 1). ``models``: name -> class names (default {"tiny": CLASSES});
    class names other than the probing labels stand for a model like pretrained YAMNet (AudioSet outputs).
    """
    from datetime import datetime

    x, y = tiny_inputs()
    n = len(y)
    clips = pd.DataFrame({"clip_id": range(n), "rel_path": [f"{CLASSES[c]}/{i}.wav" for i, c in enumerate(y)],
                          "label": [CLASSES[c] for c in y], "fold": 1, "duration_s": 5.0, "orig_sample_rate": 100,
                          "orig_channels": 1, "source": "test", "license": "CC0"})
    captions = pd.DataFrame({"clip_id": range(n), "caption": [
        "A dog barks loudly. The sound is sharp.", "A dog growls. It is loud.",
        "Birds chirp in a forest. High-pitched tweets.", "Birds sing. The sound is high-pitched.",
        "Rain falls steadily. A soft hiss.", "Rain patters on a roof. It is calm."]})
    feats = pd.DataFrame({"clip_id": range(n), "mean_abs_amplitude": x.mean(1).astype(float),
                          "median_frequency_hz": 100.0 * np.arange(1, n + 1), "tags": ""})

    def commit(stage, scope, tables):
        from and_engine.store.schema import RESULT_TABLES

        full = {t: df.reindex(columns=[c for c, _ in RESULT_TABLES[t]]) for t, df in tables.items()}
        store.commit_step("seed", stage, scope, {}, f"seed-{stage}-{scope}", full, datetime.now(), "test")

    commit("clips", {}, {"clips": clips})
    commit("captions", {}, {"captions": captions, "acoustic_features": feats})
    for m, names in (models or {"tiny": list(CLASSES)}).items():
        layers = pd.DataFrame({"model": m, "layer": ["fc1", "classifier"], "module_path": ["0", "2"],
                               "kind": ["linear", "classifier"], "block": [0, 1], "layer_index": [0, 1],
                               "n_neurons": [4, 3], "map_freq": 0, "map_time": 0})
        info = pd.DataFrame([{"model": m, "kind": "tiny", "sample_rate": 100, "class_names": names, "heldout_fold": 1,
                              "heldout_accuracy": 1.0, "n_heldout": n, "checkpoint": "", "description": "tiny"}])
        logits = {"fc1": np.c_[x, x[:, 0] + x[:, 1]], "classifier": expected_logits(x, [])}
        ext = []
        for layer, acts in logits.items():
            for j in range(acts.shape[1]):
                order = np.lexsort((np.arange(n), -acts[:, j]))
                ext.append((m, layer, j, order[:3].tolist(), acts[order[:3], j].tolist(),
                            order[::-1][:3].tolist(), acts[order[::-1][:3], j].tolist()))
        extremes = pd.DataFrame(ext, columns=["model", "layer", "neuron", "topk_clip_ids", "topk_values",
                                              "bottomk_clip_ids", "bottomk_values"])
        activations = pd.DataFrame([(m, layer, j, acts[:, j].astype(np.float32).tolist())
                                    for layer, acts in logits.items() for j in range(acts.shape[1])],
                                   columns=["model", "layer", "neuron", "values"])
        commit("models", {"model": m}, {"models": info, "layers": layers, "extremes": extremes,
                                        "activations": activations})
        closed = pd.concat([closed_concepts(), head_concepts(m)]).assign(model=m)
        commit("dissect", {"model": m}, {"closed_concepts": closed,
                                         "open_concepts": open_concepts().assign(model=m),
                                         "pos_counts": pos_counts().assign(model=m)})
