"""A small, realistic results database for the app's tests, written through ``ResultsStore`` + ``run_step``.

``build_fixture_db(path)`` fills every table the pages read for one model ``tinynet`` (a conv layer
with time x frequency maps, a linear layer, a classifier) over the real demo clips of six classes.
``tiny_target_model`` is a randomly initialised TargetModel with exactly those layers, so live pruning
runs for real on CPU in well under a second; ``patch_model_loader`` makes the registry load it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from and_engine.config import PROJECT_ROOT, Config, ModelConfig, ProbingSetConfig, RunConfig
from and_engine.pipeline.core import BuildContext, Progress, run_step
from and_engine.store.results import ResultsStore

DEMO_ROOT = PROJECT_ROOT / "data" / "demo"
CLASSES = ["chirping_birds", "church_bells", "cow", "crackling_fire", "door", "engine"]
ADJ = {"chirping_birds": ("high-pitched", "bright"), "church_bells": ("resonant", "loud"),
       "cow": ("low", "loud"), "crackling_fire": ("crackling", "noisy"), "door": ("sharp", "short"),
       "engine": ("rumbling", "continuous")}
MODEL = "tinynet"
LAYERS = [("block1.conv", "conv", 0, 8, 4, 10), ("block2.fc", "linear", 1, 12, 0, 0),
          ("classifier", "classifier", 2, len(CLASSES), 0, 0)]
K = 5


def fixture_config(path: Path) -> Config:
    return Config(run=RunConfig(name="fixture", database=str(path), ratings_database=str(path.parent / "r.duckdb")),
                  probing_set=ProbingSetConfig(kind="demo", path=str(DEMO_ROOT), heldout_fold=1),
                  models=(ModelConfig(name=MODEL, kind="tiny-test"),))


def _clips() -> pd.DataFrame:
    meta = pd.read_csv(DEMO_ROOT / "meta.csv")
    meta = meta[meta["label"].isin(CLASSES)].sort_values("filename").reset_index(drop=True)
    return pd.DataFrame({"clip_id": np.arange(len(meta), dtype=np.int32), "rel_path": meta["filename"],
                         "label": meta["label"], "fold": meta["fold"].astype(np.int32), "duration_s": 5.0,
                         "orig_sample_rate": 44100, "orig_channels": 1, "source": meta["source_package"],
                         "license": meta["license"]})


def _caption(label: str) -> str:
    a, b = ADJ[label]
    return f"The sound of a {label.replace('_', ' ')} is heard. It is {a} and {b}. Recorded outdoors."


def _activations(clips: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    lab = clips["label"].map(CLASSES.index).to_numpy()
    out = {}
    for name, _kind, _block, n, _f, _t in LAYERS:
        u = rng.normal(size=(len(clips), n)).astype(np.float32)
        u += 3.0 * (lab[:, None] == (np.arange(n) % len(CLASSES))[None, :])
        out[name] = u
    return out


def _neuron_rows(acts: dict[str, np.ndarray], clips: pd.DataFrame, rng: np.random.Generator) -> dict[str, list]:
    t: dict[str, list] = {k: [] for k in ("activations", "extremes", "activation_maps", "summaries",
                                          "calibration_points", "calibrated_summaries", "closed_concepts",
                                          "open_concepts", "pos_counts")}
    ids = clips["clip_id"].to_numpy()
    for layer, _kind, _block, n, mf, mt in LAYERS:
        u = acts[layer]
        for j in range(n):
            key = {"model": MODEL, "layer": layer, "neuron": j}
            col = u[:, j]
            top = np.lexsort((ids, -col))[:K]
            bot = np.lexsort((ids, col))[:K]
            t["activations"].append({**key, "values": col.tolist()})
            t["extremes"].append({**key, "topk_clip_ids": ids[top].tolist(), "topk_values": col[top].tolist(),
                                  "bottomk_clip_ids": ids[bot].tolist(), "bottomk_values": col[bot].tolist()})
            if mf:
                for r, c in enumerate(ids[top]):
                    m = rng.random((mf, mt)) * 0.3
                    m[rng.integers(mf), rng.integers(mt)] += 2.0
                    t["activation_maps"].append({**key, "clip_id": int(c), "rank": r + 1, "n_freq": mf, "n_time": mt,
                                                 "map": m.ravel().tolist()})
            pref = CLASSES[j % len(CLASSES)]
            other = CLASSES[(j + 3) % len(CLASSES)]
            a, b = ADJ[pref]
            noun = pref.split("_")[-1]
            points = [f"The clips share the sound of {pref.replace('_', ' ')} in every recording.",
                      f"The recordings are {a} and {b} with a clear character.",
                      "Some of the clips were recorded outdoors in open spaces."]
            low = ["Some of the clips were recorded outdoors in open spaces.",
                   f"The clips are quiet recordings of {other.replace('_', ' ')} sounds."]
            t["summaries"] += [{**key, "side": "top", "summary": _numbered(points), "cache_key": f"h{layer}{j}",
                                "backend": "rule", "llm_model": "fixture-rule", "status": "ok"},
                               {**key, "side": "bottom", "summary": _numbered(low), "cache_key": f"l{layer}{j}",
                                "backend": "rule", "llm_model": "fixture-rule", "status": "ok"}]
            cosines = [0.3 + 0.05 * (j % 4), 0.55 + 0.02 * (j % 5), 0.97]
            for i, (p, c) in enumerate(zip(points, cosines)):
                t["calibration_points"].append({**key, "point_index": i, "point": p, "best_match": low[0 if i == 2 else 1],
                                                "best_cosine": c})
            kept = [p for p, c in zip(points, cosines) if c <= 0.7]
            t["calibrated_summaries"].append({**key, "threshold": 0.7, "calibrated_summary": " ".join(kept),
                                              "n_points": 3, "n_removed": 3 - len(kept)})
            ranked = [pref] + [c for c in CLASSES if c != pref]
            for method, sims in (("DB", ("cos", "cos3", "wpmi")), ("TAB", ("cos",)), ("ICL", ("llm",))):
                for sim in sims:
                    order = ranked if (j + len(sim)) % 5 else ranked[1:] + ranked[:1]
                    for r, concept in enumerate(order[:5]):
                        t["closed_concepts"].append({**key, "method": method, "similarity": sim, "rank": r + 1,
                                                     "concept": concept, "score": round(0.9 - 0.1 * r, 3)})
            words = [(a, "ADJ"), (b, "ADJ"), ("clear", "ADJ"), (noun, "NOUN")]
            t["open_concepts"] += [{**key, "word": w, "pos": p, "count": 1} for w, p in words]
            t["pos_counts"].append({**key, "n_nouns": 3, "n_adjectives": 3, "n_verbs": 1, "n_prepositions": 2,
                                    "summary_words": 22, "n_basic_adjectives": 1, "n_open_adjectives": 3})
    return t


def _analyses(clips: pd.DataFrame) -> dict[str, pd.DataFrame]:
    df = pd.DataFrame
    sims = [("DB", "cos"), ("DB", "cos3"), ("DB", "wpmi"), ("TAB", "cos"), ("ICL", "llm")]
    methods = ["OCP", "DB", "TAB", "random"]
    per_class = [{"model": MODEL, "method": m, "target_concept": t, "class_name": c,
                  "delta_logit": (-1.5 if c == t else -0.1) * (0.1 if m == "random" else 1.0), "n_pruned": 3}
                 for m in methods for t in CLASSES for c in CLASSES]
    words = sorted({w for pair in ADJ.values() for w in pair} | {"clear"})
    return {
        "lastlayer_accuracy": df([{"model": MODEL, "method": m, "similarity": s, "top1": 80.0 + 3 * i,
                                   "top5": 100.0, "concept_cosine": 0.9, "n_neurons": len(CLASSES)}
                                  for i, (m, s) in enumerate(sims)]),
        "pruning_summary": df([{"model": MODEL, "method": m, "mean_pruned": 3.0, "delta_a": -1.5, "delta_r": -0.1,
                                "delta_a_minus_r": 1.4 if m != "random" else 0.05, "n_concepts": len(CLASSES)}
                               for m in methods]),
        "pruning_per_class": df(per_class),
        "feature_importance": df([{"model": MODEL, "criterion": c, "percent": p, "seed": s, "accuracy": 0.9 - p / 50,
                                   "n_pruned": int(p)} for c in ("nouns", "random") for p in (2.0, 4.0)
                                  for s in (0, 1)]),
        "adjective_stats": df([{"model": MODEL, "layer": name, "block": blk, "mean_adjectives": 2.5 + blk / 2,
                                "n_neurons": n} for name, _k, blk, n, _f, _t in LAYERS]),
        "top_adjectives": df([{"model": MODEL, "adjective": w, "n_neurons": 20 - i, "rank": i + 1}
                              for i, w in enumerate(words)]),
        "cluster_elbow": df([{"k": k, "inertia": 100.0 / k} for k in range(2, 9)]),
        "caption_sentences": df([{"clip_id": int(r.clip_id), "sentence_index": i, "sentence": s,
                                  "cluster": CLASSES.index(r.label) % 4 if i < 2 else 4}
                                 for r in clips.itertuples() for i, s in enumerate(_caption(r.label).split(". "))]),
        "cluster_words": df([{"cluster": c, "word": w, "weight": 1.0 / (i + 1), "n_sentences": 10 + c}
                             for c in range(5) for i, w in enumerate(words[c:c + 5] + ["sound"])]),
        "interpretability": df([{"model": MODEL, "layer": name, "block": blk, "tau": tau,
                                 "pct_uninterpretable": 10.0 * tau - 5 * blk, "n_neurons": n}
                                for name, _k, blk, n, _f, _t in LAYERS for tau in (3, 4, 5)]),
        "acoustic_check": df([{"model": MODEL, "adjective": a, "has_adjective": h, "n_neurons": 5,
                               "mean_amplitude": 0.2 + 0.1 * h, "mean_median_frequency_hz": 900.0 + 500 * h}
                              for a in ("loud", "high-pitched") for h in (True, False)]),
        "adjective_checks": df([{"adjective": w, "accepted": True, "answer": "Yes."} for w in words]),
    }


def _numbered(points: list[str]) -> str:
    """Points -> an LLM-style numbered answer, one point per line."""
    return "\n".join(f"{i}. {p}" for i, p in enumerate(points, start=1))


def build_fixture_db(path: Path) -> Path:
    """Write the fixture results database at ``path`` (replacing nothing else) -> ``path``."""
    path = Path(path)
    cfg = fixture_config(path)
    rng = np.random.default_rng(0)
    clips = _clips()
    acts = _activations(clips, rng)
    neuron = {k: pd.DataFrame(v) for k, v in _neuron_rows(acts, clips, rng).items()}
    with ResultsStore(path) as store:
        ctx = BuildContext(cfg, store, "fixture-run", Progress(quiet=True))
        store.record_run("fixture-run", "fixture", json.dumps(cfg.to_dict(), default=str), cfg.config_hash(),
                         "fixture", "running")
        fp = run_step(ctx, "clips", {}, {"kind": "demo"}, [], lambda: {
            "clips": clips, "clip_issues": pd.DataFrame([{"rel_path": "audio/bad.ogg", "reason": "silent"}]),
            "captions": pd.DataFrame({"clip_id": clips["clip_id"], "caption": clips["label"].map(_caption)})})
        models = pd.DataFrame([{"model": MODEL, "kind": "tiny-test", "sample_rate": 16000, "class_names": CLASSES,
                                "heldout_fold": 1, "heldout_accuracy": 0.42, "n_heldout": int((clips.fold == 1).sum()),
                                "checkpoint": "", "description": "tiny random test network"}])
        layers = pd.DataFrame([{"model": MODEL, "layer": name, "module_path": name, "kind": kind, "block": blk,
                                "layer_index": i, "n_neurons": n, "map_freq": f, "map_time": t}
                               for i, (name, kind, blk, n, f, t) in enumerate(LAYERS)])
        run_step(ctx, "activations", {"model": MODEL}, {"backend": "tiny-test", "pool": "mean"}, [fp], lambda: {
            "models": models, "layers": layers, "activations": neuron["activations"],
            "extremes": neuron["extremes"], "activation_maps": neuron["activation_maps"]})
        run_step(ctx, "summaries", {"model": MODEL}, {"backend": "rule", "model": "fixture-rule"}, [fp],
                 lambda: {k: neuron[k] for k in ("summaries",)})
        run_step(ctx, "modules", {"model": MODEL}, {"text_encoder": "minilm", "threshold": 0.7}, [fp],
                 lambda: {k: neuron[k] for k in ("calibration_points", "calibrated_summaries", "closed_concepts",
                                                 "open_concepts", "pos_counts")})
        run_step(ctx, "analyses", {"model": MODEL}, {"n_clusters": 5}, [fp], lambda: _analyses(clips))
        store.record_run("fixture-run", "fixture", "", "", "fixture", "done", finished=True)
    return path


def _server_navigation_mode() -> None:
    """Make every AppTest run behave like a running server after its first script run.

    AppTest resets Streamlit's legacy pages/-directory flag before *every* run, so each run would start in
    that mode and go through the page's switch-and-rerun (``pages/_shared.py``), which drops button and
    form-submit values. A server leaves the mode once, on its first run (covered by tests/test_browser.py).
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager.__init__, "_and_patched", False):
        return
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    init._and_patched = True
    PagesManager.__init__ = init


def run_page(page: str, query_params: dict | None = None, timeout: float = 60):
    """AppTest of ``app.py`` switched to ``page`` (e.g. "pages/neuron.py"), run once -> the AppTest.

    The caller sets ``AND_EXPLORER_DB`` (and ``AND_EXPLORER_RATINGS``) with monkeypatch.setenv first.
    """
    from streamlit.testing.v1 import AppTest

    _server_navigation_mode()

    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=timeout)
    for k, v in (query_params or {}).items():
        at.query_params[k] = v
    at.switch_page(page)
    return at.run()


def chart_titles(at) -> list[str]:
    """Titles of the plotly charts an AppTest run rendered, in order."""
    return [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
