"""Benchmark: page render times of the app on the demo fixture DB vs a paper-scale DB (vs unindexed).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_app.py [--out /tmp/bench_app] [--blocks 12] [--reuse]
        [--real-db data/build/demo.duckdb]

Builds (through ``ResultsStore.commit_step``) a synthetic database of AST-base shape: 12 blocks x
(768 + 3072 + 768) + 50 = 55,346 neurons x 2,000 clips (a 443 MB activation matrix as FLOAT[] rows,
generated per layer with pyarrow), top-K / bottom-K, summaries, calibration points, closed concepts
(DB x 5 similarities, TAB, ICL; top-5 each), open concepts, analyses, per-position maps for block 0, and the
clips' media (the clip_media stage's function on the demo files the clips table names).
Then times ``AppTest`` runs of every page (median of 3 after a warm-up) on: the same synthetic database at
demo scale (one block, 251 clips), the paper-scale DB, and a copy of it with the schema's indexes dropped;
prints ratios. Nothing is imported from tests/ (the page driver is ``benchmarks/_apptest.py``).
Pruning at paper scale is timed on its database side (candidate rows + neuron selection), since its
model forward pass depends on the model, not the database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from and_engine.config import Config, ModelConfig, ProbingSetConfig, RunConfig  # noqa: E402
from and_engine.store.results import ResultsStore  # noqa: E402

ESC50 = ("dog rooster pig cow frog cat hen insects sheep crow rain sea_waves crackling_fire crickets chirping_birds "
         "water_drops wind pouring_water toilet_flush thunderstorm crying_baby sneezing clapping breathing coughing "
         "footsteps laughing brushing_teeth snoring drinking_sipping door_wood_knock mouse_click keyboard_typing "
         "door_wood_creaks can_opening washing_machine vacuum_cleaner clock_alarm clock_tick glass_breaking "
         "helicopter chainsaw siren car_horn engine train church_bells airplane fireworks hand_saw").split()
ADJECTIVES = ("loud soft high-pitched low clear noisy sharp continuous rhythmic metallic bright deep quiet harsh "
              "smooth repetitive short long distant muffled").split() + [f"adj{i}" for i in range(1500)]
MODEL, K = "ast-synthetic", 5
DEMO_ROOT = ROOT / "data" / "demo"  # the embedded demo's clips (their file names feed the clips table)
DEMO_CLIPS, DEMO_BLOCKS = 251, 1  # demo scale: the embedded demo's clip count, one AST block
COMBOS = [("DB", s) for s in ("cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi")] + [("TAB", "cos"), ("ICL", "llm")]
# page -> an interaction timed together with the first render (None: just render)
PAGES = {
    "pages/overview.py": lambda at: at.select_slider(key="tau").set_value(5).run(),
    "pages/neuron.py": lambda at: at.slider(key="nr_threshold").set_value(0.5).run(),
    "pages/concepts.py": lambda at: at.text_input(key="cc_term").input("loud").run(),
    "pages/human_eval.py": lambda at: at.text_input(key="he_rater").input("bench").run(),
}


def _list_array(values: np.ndarray, pa_type: pa.DataType) -> pa.ListArray:
    """(rows, width) array -> list column (one list per row) without Python loops."""
    rows, width = values.shape
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.ravel(), type=pa_type))


def _layer_tables(layer: str, n: int, n_clips: int, rng: np.random.Generator, maps: bool) -> dict[str, pa.Table]:
    u = rng.standard_normal((n, n_clips), dtype=np.float32)
    order = np.argsort(-u, axis=1, kind="stable")
    top, bot = order[:, :K], order[:, ::-1][:, :K]
    ids = np.arange(n, dtype=np.int32)
    key = {"model": pa.array([MODEL] * n), "layer": pa.array([layer] * n), "neuron": pa.array(ids)}
    out = {
        "activations": pa.table({**key, "values": _list_array(u, pa.float32())}),
        "extremes": pa.table({**key, "topk_clip_ids": _list_array(top.astype(np.int32), pa.int32()),
                              "topk_values": _list_array(np.take_along_axis(u, top, 1), pa.float32()),
                              "bottomk_clip_ids": _list_array(bot.astype(np.int32), pa.int32()),
                              "bottomk_values": _list_array(np.take_along_axis(u, bot, 1), pa.float32())}),
    }
    rep = lambda k: {c: np.repeat(np.asarray(v), k) for c, v in  # noqa: E731
                     (("model", [MODEL] * n), ("layer", [layer] * n), ("neuron", ids))}
    cls = rng.integers(0, len(ESC50), size=(n, 2))
    adj = rng.integers(0, len(ADJECTIVES), size=(n, 4))
    pts = [f"The clips share {ESC50[c]} sounds that are {ADJECTIVES[a]} and steady over time." for c, a in
           zip(cls[:, 0], adj[:, 0])]
    out["summaries"] = pd.DataFrame({**rep(2), "side": np.tile(["top", "bottom"], n),
                                     "summary": np.repeat(pts, 2), "cache_key": "k", "backend": "rule",
                                     "llm_model": "synthetic", "status": "ok"})
    out["calibration_points"] = pd.DataFrame({**rep(3), "point_index": np.tile(np.arange(3), n),
                                              "point": np.repeat(pts, 3), "best_match": "Some quiet background.",
                                              "best_cosine": rng.random(3 * n)})
    out["calibrated_summaries"] = pd.DataFrame({"model": MODEL, "layer": layer, "neuron": ids, "threshold": 0.7,
                                                "calibrated_summary": pts, "n_points": 3, "n_removed": 1})
    per = len(COMBOS) * 5
    concepts = rng.integers(0, len(ESC50), size=n * per)
    out["closed_concepts"] = pd.DataFrame({**rep(per), "method": np.tile(np.repeat([m for m, _ in COMBOS], 5), n),
                                           "similarity": np.tile(np.repeat([s for _, s in COMBOS], 5), n),
                                           "rank": np.tile(np.arange(1, 6), n * len(COMBOS)),
                                           "concept": np.asarray(ESC50)[concepts], "score": rng.random(n * per)})
    words = np.concatenate([np.asarray(ADJECTIVES)[adj], np.asarray(ESC50)[cls]], axis=1)
    out["open_concepts"] = pd.DataFrame({**rep(6), "word": words.ravel(),
                                         "pos": np.tile(["ADJ"] * 4 + ["NOUN"] * 2, n), "count": 1})
    if maps:
        grid = rng.random((n * K, 12 * 101), dtype=np.float32)
        out["activation_maps"] = pa.table({"model": pa.array([MODEL] * (n * K)),
                                           "layer": pa.array([layer] * (n * K)),
                                           "neuron": pa.array(np.repeat(ids, K)),
                                           "clip_id": pa.array(top.ravel().astype(np.int32)),
                                           "rank": pa.array(np.tile(np.arange(1, K + 1, dtype=np.int32), n)),
                                           "n_freq": pa.array(np.full(n * K, 12, np.int32)),
                                           "n_time": pa.array(np.full(n * K, 101, np.int32)),
                                           "map": _list_array(grid, pa.float32())})
    return out


def _analyses_tables(clips: pd.DataFrame, layers: list[tuple[str, str, int, int]]) -> dict[str, pd.DataFrame]:
    """Analyses rows of the engine's shapes for MODEL's ``layers`` (name, kind, block, n); made-up values."""
    df, words, methods = pd.DataFrame, ADJECTIVES[:20], ["OCP", "DB", "TAB", "random"]
    gain = {"OCP": 1.0, "DB": 0.8, "TAB": 0.6, "random": 0.05}
    return {
        "lastlayer_accuracy": df([{"model": MODEL, "method": m, "similarity": s, "top1": 60.0 + 4 * i, "top5": 90.0,
                                   "concept_cosine": 0.8, "n_neurons": 50} for i, (m, s) in enumerate(COMBOS)]),
        "pruning_summary": df([{"model": MODEL, "method": m, "mean_pruned": 30.0, "delta_a": -2 * gain[m],
                                "delta_r": -0.2, "delta_a_minus_r": 1.8 * gain[m], "n_concepts": 50} for m in methods]),
        "pruning_per_class": df([{"model": MODEL, "method": m, "target_concept": t, "class_name": c,
                                  "delta_logit": -(1.5 if c == t else 0.1) * gain[m], "n_pruned": 30}
                                 for m in methods for t in ESC50 for c in ESC50]),
        "feature_importance": df([{"model": MODEL, "criterion": c, "percent": p, "seed": s, "accuracy": 0.9 - p / 50,
                                   "n_pruned": int(p * 10)} for c in ("nouns", "random") for p in (2.0, 4.0, 6.0)
                                  for s in (0, 1, 2)]),
        "adjective_stats": df([{"model": MODEL, "layer": name, "block": b, "mean_adjectives": 2.0 + b / 4,
                                "n_neurons": n} for name, _kind, b, n in layers]),
        "interpretability": df([{"model": MODEL, "layer": name, "block": b, "tau": tau, "n_neurons": n,
                                 "pct_uninterpretable": 8.0 * tau - b} for name, _kind, b, n in layers
                                for tau in (3, 4, 5)]),
        "top_adjectives": df({"model": MODEL, "adjective": words, "n_neurons": np.arange(2000, 0, -100),
                              "rank": np.arange(1, 21)}),
        "adjective_checks": df({"adjective": words, "accepted": True, "answer": "Yes."}),
        "acoustic_check": df([{"model": MODEL, "adjective": a, "has_adjective": h, "n_neurons": 500,
                               "mean_amplitude": 0.2 + 0.1 * h, "mean_median_frequency_hz": 900.0 + 500 * h}
                              for a in ("loud", "high-pitched") for h in (True, False)]),
        "cluster_elbow": df({"k": np.arange(2, 21), "inertia": 100.0 / np.arange(2, 21)}),
        "caption_sentences": df({"clip_id": np.repeat(clips["clip_id"].to_numpy(), 2),
                                 "sentence_index": np.tile([0, 1], len(clips)),
                                 "sentence": np.ravel([[f"A {label} is heard", "It is loud and clear."]
                                                       for label in clips["label"]]),
                                 "cluster": np.repeat(clips["clip_id"].to_numpy() % 11, 2)}),
        "cluster_words": df([{"cluster": c, "word": w, "weight": 1.0 / (i + 1), "n_sentences": 40 + c}
                             for c in range(11) for i, w in enumerate(words[c : c + 5] + ["sound"])]),
    }


def _clip_media(clips: pd.DataFrame, sample_rate: int = 16000, seconds: float = 5.0) -> pd.DataFrame:
    """``clip_media`` rows of the build's stage function for ``clips`` (each distinct demo file decoded once)."""
    from and_engine.explorer.media import load_clip
    from and_engine.stages.clip_media import clip_media_rows

    files = sorted(set(clips["rel_path"]))
    waves = np.stack([load_clip(DEMO_ROOT, f, sample_rate, seconds) for f in files])
    rows = clip_media_rows(waves, np.arange(len(files)), sample_rate).set_index("clip_id")
    out = rows.loc[clips["rel_path"].map(files.index)].reset_index(drop=True)
    return out.assign(clip_id=clips["clip_id"].to_numpy())


def build_paper_scale_db(path: Path, n_clips: int = 2000, blocks: int = 12, seed: int = 0) -> Path:
    """Write the synthetic AST-shaped results database at ``path`` -> ``path``."""
    rng = np.random.default_rng(seed)
    cfg = Config(run=RunConfig(name="paper-scale", database=str(path)),
                 probing_set=ProbingSetConfig(kind="demo", path=str(DEMO_ROOT)),
                 models=(ModelConfig(name=MODEL, kind="ast-checkpoint"),))
    meta = pd.read_csv(DEMO_ROOT / "meta.csv")
    pick = np.arange(n_clips) % len(meta)
    clips = pd.DataFrame({"clip_id": np.arange(n_clips, dtype=np.int32), "rel_path": meta["filename"].to_numpy()[pick],
                          "label": np.asarray(ESC50)[np.arange(n_clips) % 50], "fold": (np.arange(n_clips) % 5) + 1,
                          "duration_s": 5.0, "orig_sample_rate": 44100, "orig_channels": 1, "source": "synthetic",
                          "license": "CC0-1.0"})
    layers = [(f"block{b}.{name}", kind, b, n) for b in range(blocks)
              for name, kind, n in (("attn_out", "linear", 768), ("fc1", "linear", 3072), ("fc2", "linear", 768))]
    layers.append(("classifier", "classifier", blocks, 50))
    now = datetime.now()
    with ResultsStore(path) as store:
        store.record_run("bench", "paper-scale", json.dumps(cfg.to_dict(), default=str), cfg.config_hash(), "bench",
                         "done")
        commit = lambda stage, scope, tables: store.commit_step("bench", stage, scope, {"synthetic": True},  # noqa: E731
                                                                f"{stage}{scope}", tables, now, "bench")
        commit("clips", {}, {"clips": clips, "captions": pd.DataFrame({
            "clip_id": clips["clip_id"], "caption": "A " + clips["label"] + " is heard. It is loud and clear."})})
        commit("clip_media", {}, {"clip_media": _clip_media(clips)})
        commit("models", {"model": MODEL}, {
            "models": pd.DataFrame([{"model": MODEL, "kind": "ast-checkpoint", "sample_rate": 16000,
                                     "class_names": ESC50, "heldout_fold": 1, "heldout_accuracy": 0.9,
                                     "n_heldout": n_clips // 5, "checkpoint": "", "description": "synthetic"}]),
            "layers": pd.DataFrame([{"model": MODEL, "layer": name, "module_path": name, "kind": kind, "block": b,
                                     "layer_index": i, "n_neurons": n, "map_freq": 12 if b == 0 else 0,
                                     "map_time": 101 if b == 0 else 0}
                                    for i, (name, kind, b, n) in enumerate(layers)])})
        for name, _kind, b, n in layers:
            commit("neurons", {"model": MODEL, "layer": name}, _layer_tables(name, n, n_clips, rng, maps=b == 0))
        commit("analyses", {"model": MODEL}, _analyses_tables(clips, layers))
    return path


def drop_indexes_copy(src: Path, dst: Path) -> Path:
    """A copy of ``src`` without the schema's indexes (the unindexed baseline)."""
    import duckdb  # noqa: TID251 -- benchmark-only maintenance on a throwaway copy

    from and_engine.store import schema

    shutil.copyfile(src, dst)
    con = duckdb.connect(str(dst))
    for name in schema.INDEXES:
        con.execute(f'DROP INDEX IF EXISTS "idx_{name}"')
    con.close()
    return dst


def time_pages(db: Path, ratings: Path, params: dict[str, dict], repeats: int = 3) -> dict[str, tuple[float, float]]:
    """Median seconds of (a full render, then one interaction rerun) per page on ``db``, after a warm-up.

    The render is timed as the second run of a fresh AppTest session: its first run also pays AppTest's own
    start-up (component discovery reads every installed package's metadata, ~0.6-0.8 s here), which a
    running server pays once, not per page view.
    """
    from benchmarks._apptest import run_page

    os.environ["AND_EXPLORER_DB"], os.environ["AND_EXPLORER_RATINGS"] = str(db), str(ratings)
    out = {}
    for page, interact in PAGES.items():
        interact(run_page(page, params.get(page)))
        render, rerun = [], []
        for _ in range(repeats):
            at = run_page(page, params.get(page))
            t0 = time.perf_counter()
            at.run()
            t1 = time.perf_counter()
            at = interact(at)
            rerun.append(time.perf_counter() - t1)
            render.append(t1 - t0)
            if at.exception:
                raise RuntimeError(f"{page} failed on {db}: {at.exception[0].message}")
        out[page] = (statistics.median(render), statistics.median(rerun))
    return out


def time_pruning_selection(db: Path, concept: str, repeats: int = 3) -> float:
    """Median seconds of the pruning page's database side: candidate rows + select_neurons for 4 methods."""
    from and_engine.analyses.pruning import select_neurons
    from and_engine.explorer import aggregates, queries

    times = []
    with ResultsStore(db, read_only=True) as store:
        for _ in range(repeats):
            t0 = time.perf_counter()
            model = queries.models(store)["model"].iloc[0]
            sizes = queries.layers(store, model).set_index("layer")["n_neurons"].to_dict()
            closed, opened = aggregates.pruning_candidates(store, model, concept)
            for method, sim in (("OCP", None), ("DB", "cos"), ("TAB", "cos"), ("random", None)):
                sub = closed[(closed["method"] == method) & (closed["similarity"] == sim)]
                if method in ("OCP", "random") or len(sub):
                    select_neurons(method, concept, closed, opened, sizes, similarity=sim)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/bench_app")
    ap.add_argument("--blocks", type=int, default=12)
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--reuse", action="store_true", help="reuse an existing paper-scale DB in --out")
    ap.add_argument("--real-db", default="", help="also time the pages on a database built by the pipeline")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demo = out / "demo.duckdb"
    demo.unlink(missing_ok=True)
    build_paper_scale_db(demo, DEMO_CLIPS, DEMO_BLOCKS)
    paper = out / "paper.duckdb"
    if not (args.reuse and paper.exists()):
        paper.unlink(missing_ok=True)
        t0 = time.perf_counter()
        build_paper_scale_db(paper, args.clips, args.blocks)
        print(f"paper-scale DB: {paper.stat().st_size / 1e9:.2f} GB written in {time.perf_counter() - t0:.0f} s")
    bare = drop_indexes_copy(paper, out / "paper_noindex.duckdb")
    neuron = {"pages/neuron.py": {"model": MODEL, "layer": "block0.fc1", "neuron": "1234"}}
    demo_t = time_pages(demo, out / "r_demo.duckdb", neuron)
    paper_t = time_pages(paper, out / "r_paper.duckdb", neuron)
    bare_t = time_pages(bare, out / "r_bare.duckdb", neuron)
    print("seconds: full page render / interaction rerun (median of 3)")
    print(f"{'page':<22}{'demo':>14}{'paper':>14}{'no-index':>14}{'paper/demo':>12}{'no-index/paper':>16}")
    for page in PAGES:
        d, p, b = demo_t[page], paper_t[page], bare_t[page]
        print(f"{page:<22}{d[0]:>7.3f}/{d[1]:<6.3f}{p[0]:>7.3f}/{p[1]:<6.3f}{b[0]:>7.3f}/{b[1]:<6.3f}"
              f"{p[0] / d[0]:>12.2f}{b[0] / p[0]:>16.2f}")
    if args.real_db:
        real_t = time_pages(Path(args.real_db), out / "r_real.duckdb", {})
        print("real build " + args.real_db + ": " + ", ".join(f"{p.split('/')[-1]} {t[0]:.3f}/{t[1]:.3f}"
                                                              for p, t in real_t.items()))
    sel = {name: time_pruning_selection(db, "cow") for name, db in (("demo", demo), ("paper", paper),
                                                                      ("no-index", bare))}
    print("pruning selection (DB side) s: " + ", ".join(f"{k} {v:.3f}" for k, v in sel.items())
          + f"; paper/demo {sel['paper'] / sel['demo']:.2f}")


if __name__ == "__main__":
    main()
