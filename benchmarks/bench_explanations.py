"""Benchmark: are the embedded explanations right? Reads a built results database (+ its probing set's audio).

    python benchmarks/bench_explanations.py data/build/demo.duckdb --config configs/demo.toml
    python benchmarks/bench_explanations.py DB --config CFG --no-embedding     # skip the text-encoder scores

Labels -> words: ``benchmarks/label_words.csv`` (label, extra terms separated by ";": synonyms or more
specific names, hen -> chicken / rooster, sea_waves -> ocean / surf; never a hypernym such as "animal"), the
one file the engine's ground-truth stage reads too (``[ground_truth] label_words``). Captions never see it.
A text *names* a label by the engine's one rule, ``and_engine.text.labels`` (``label_terms`` +
``names_label``): the label itself or one of its terms, every word of the term present as the same Porter
stem (``sea_waves`` needs "sea" and "wave"). Definitions of every number printed:

1. **Captions name the source**: share of clips whose caption names the clip's
   label. **Tagger ceiling top-k**: share of clips for which one of the k AudioSet classes with the highest
   YAMNet score (mean over the clip's 0.96 s windows, computed here from the audio) has a display name
   naming the label. "Of the top-3 clips" = the caption rate among the clips whose top 3 names it.
2. **S_h names the source** (trained variants = models whose classes are the probing labels; hidden layers
   = every layer but the classifier): among neurons whose top-K clips hold >= 4 of K (4/5) of one label
   and >= 3 of whose K top captions name that label, the share whose S_h names it. Also given over every
   neuron with >= 3 of K captions naming one label (no purity condition).
3. **Acoustic claims of S_h**: each point of S_h (``module_b.split_points``) claims the properties of
   ``CLAIMS`` whose words it uses (one claim per property per point; "than most" / "compared with the
   rest" make loudness words relative). A claim is *supported* when at least a majority (K // 2 + 1) of
   the neuron's top-K clips satisfy its predicate on the clips' measurements (``PREDICATES``; measured
   here from the audio by ``acoustics.measurements.measure_acoustics``: the stored ``acoustic_features``
   lack voicing, pitch spread and onset regularity). Words of no property (mood, quality) are not claims.
   Also counted: points with the template "tonal, carrying pure, pitched notes".
4. **ICL guesses**: ICL answers in ``llm_cache`` that name no class (the rule backend's "(a guess)" or
   an answer such as "none"); *stored* = neurons whose rank-1 ICL concept comes from such an answer (the
   description read by ICL is S_h or S_h^c, per the stored ``module_a_icl`` step). **Ties**: neurons with
   a stored top-n whose scores are all equal (rank 1 = rank n), per similarity.
5. **Calibration opposites**: removed S_h points (best cosine > the stored threshold) whose best S_l
   match takes the opposite side of an acoustic axis (``text.polarity.opposite``: loud / quiet, high- /
   low-pitched, tonal / noisy, continuous / intermittent, ...).
6. **Embedding score** (no LLM). Where the database holds the scores stage's results (``score_summary``,
   ``docs/scores.md``), those are printed: per layer the mean AUC / Pearson r of S_h^c and of the stage's
   ``shuffled`` control (the S_h^c of another neuron of the same layer), for every stored scorer
   (``embedding``: captions; ``audio-text``: the clip audio), on the stage's scoring sets. Otherwise (a
   database built before the stage, e.g. the baseline) the script computes it itself, per neuron with a
   non-empty explanation E: scoring clips = every clip but the neuron's top-K and bottom-K (those E was
   written from); s_i = cosine(text encoder(E), text encoder(caption_i)) with the configured
   ``module_a.text_encoder``; **AUC** of s separating the top 10 % of the scoring clips by activation (at
   least one; ties by clip id) from the rest, and **Pearson r** of s with the activation; the **shuffled**
   control scores, on the same clips, the E of another neuron of the same layer (a random derangement, seed
   0). ``--own-embedding`` computes it even where stored scores exist. Per layer: the mean over neurons; the
   target is mean AUC(S_h^c) > mean AUC(shuffled) in every layer.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLAIMS: dict[str, tuple[str, ...]] = {  # property -> the words that claim it
    "loud": ("loud", "louder", "deafening", "booming", "thunderous", "forceful", "blaring"),
    "moderately-loud": ("moderately-loud", "moderate", "medium"),
    "quiet": ("quiet", "quieter", "soft", "softer", "faint", "hushed", "subdued", "silent"),
    "high-pitched": ("high-pitched", "shrill", "squeaky"), "low-pitched": ("low-pitched", "bassy"),
    "mid-pitched": ("mid-pitched",), "tonal": ("tonal", "harmonic", "pitched", "pure", "notes"),
    "noisy": ("noisy", "static-like", "grainy", "hissing"),
    "high-frequency": ("high-frequency", "hissy"), "low-frequency": ("low-frequency",), "mid-range": ("mid-range",),
    "continuous": ("continuous", "steady", "sustained", "unbroken", "droning"),
    "intermittent": ("intermittent", "sporadic", "bursts", "haphazard"), "brief": ("brief", "momentary"),
    "repetitive": ("repetitive", "rhythmic", "periodic", "repeated", "rhythm"),
    "dynamic": ("dynamic",), "even-level": ("even-level", "even"),
}
_CLAIM_OF = {w: p for p, ws in CLAIMS.items() for w in ws}
STABLE_PITCH = "pitch_hz"  # measured only for a stable, voiced pitch (acoustics.measurements)


def _pitch(f: pd.DataFrame, lo: float, hi: float) -> pd.Series:
    return f[STABLE_PITCH].notna() & (f[STABLE_PITCH] >= lo) & (f[STABLE_PITCH] < hi)


PREDICATES = {  # property -> clip measurements -> bool per clip (thresholds in dBFS, Hz, seconds)
    "loud": lambda f: f["rms_db"] >= -20, "moderately-loud": lambda f: (f["rms_db"] >= -35) & (f["rms_db"] < -20),
    "quiet": lambda f: f["rms_db"] < -35,
    "relatively-loud": lambda f: f["relative_loudness"] >= 0.8,
    "relatively-quiet": lambda f: f["relative_loudness"] <= 0.2,
    "high-pitched": lambda f: _pitch(f, 1000, np.inf), "low-pitched": lambda f: _pitch(f, 0, 250.0001),
    "mid-pitched": lambda f: _pitch(f, 250.0001, 1000), "tonal": lambda f: f[STABLE_PITCH].notna(),
    "noisy": lambda f: f["spectral_flatness"] >= 0.3,
    "high-frequency": lambda f: f["median_frequency_hz"] >= 3000,
    "low-frequency": lambda f: f["median_frequency_hz"] <= 500,
    "mid-range": lambda f: (f["median_frequency_hz"] > 500) & (f["median_frequency_hz"] < 3000),
    "continuous": lambda f: f["active_s"] >= 0.8 * f["clip_seconds"], "brief": lambda f: f["active_s"] < 1.0,
    "intermittent": lambda f: f["n_onsets"] >= 3,
    "repetitive": lambda f: (f["n_onsets"] >= 3) & (f["onset_regularity"] >= 0.75),
    "dynamic": lambda f: f["dynamic_range_db"] >= 30, "even-level": lambda f: f["dynamic_range_db"] <= 6,
}
TONAL_TEMPLATE = "carrying pure, pitched notes"


# ---------- text matching ----------
def label_words(path: Path, labels) -> dict[str, tuple]:
    """-> {label: its terms (``text.labels.label_terms``)} for every label of the probing set."""
    from and_engine.text.labels import label_terms, read_label_words

    table = read_label_words(path)
    return {lab: label_terms(lab, table) for lab in labels}


def names_label(text: str, terms) -> bool:
    from and_engine.text.labels import names_label as engine_names_label

    return engine_names_label(str(text or ""), terms)


def claims(point: str) -> set[str]:
    """One S_h point -> the properties it claims (``CLAIMS``; relative loudness with "than most")."""
    text = point.lower().replace("moderately loud", "moderately-loud").replace("an even level", "even-level")
    found = {_CLAIM_OF[w] for w in re.findall(r"[a-z]+(?:-[a-z]+)*", text) if w in _CLAIM_OF}
    if "than most" in text or "compared with the rest" in text:
        found = {"relatively-" + ("loud" if p == "loud" else "quiet") if p in ("loud", "quiet") else p for p in found}
    return found


# ---------- 1. captions ----------
def caption_naming(clips: pd.DataFrame, captions: pd.DataFrame, mean_scores: np.ndarray, class_names: list[str],
                   words: dict[str, tuple]) -> dict:
    df = clips.merge(captions, on="clip_id")
    df = df[df["label"].isin(words)].reset_index(drop=True)
    hit = np.array([names_label(c, words[lab]) for c, lab in zip(df["caption"], df["label"])])
    order = np.argsort(-mean_scores[df["clip_id"].to_numpy()], axis=1)
    top = {k: np.array([any(names_label(class_names[j], words[lab]) for j in row[:k])
                        for row, lab in zip(order, df["label"])]) for k in (1, 3, 5)}
    return {"clips": len(df), "captions_name": hit.mean(), "n_name": int(hit.sum()),
            "of_top3": hit[top[3]].mean() if top[3].any() else float("nan"), "n_top3": int(top[3].sum()),
            **{f"tagger_top{k}": v.mean() for k, v in top.items()}}


# ---------- 2. S_h naming ----------
def summary_naming(extremes: pd.DataFrame, summaries: pd.DataFrame, clips: pd.DataFrame, captions: pd.DataFrame,
                   words: dict[str, tuple]) -> dict:
    label = clips.set_index("clip_id")["label"].to_dict()
    cap = captions.set_index("clip_id")["caption"].to_dict()
    sh = summaries.set_index(["model", "layer", "neuron"])["summary"].to_dict()
    strict = loose = strict_hit = loose_hit = 0
    for r in extremes.itertuples():
        ids = list(r.topk_clip_ids)
        labs = Counter(label[i] for i in ids)
        for lab, n_lab in labs.most_common():
            if lab not in words:
                continue
            n_cap = sum(names_label(cap[i], words[lab]) for i in ids)
            if n_cap < 3:
                continue
            ok = names_label(sh.get((r.model, r.layer, r.neuron), ""), words[lab])
            loose, loose_hit = loose + 1, loose_hit + ok
            if n_lab >= len(ids) - 1 and len(ids) >= 4:
                strict, strict_hit = strict + 1, strict_hit + ok
            break
    return {"strict": strict, "strict_hit": strict_hit, "loose": loose, "loose_hit": loose_hit}


# ---------- 3. acoustic claims ----------
def claim_support(extremes: pd.DataFrame, summaries: pd.DataFrame, features: pd.DataFrame) -> dict:
    from and_engine.stages.module_b import split_points

    holds = pd.DataFrame({p: fn(features).to_numpy(bool) for p, fn in PREDICATES.items()}, index=features["clip_id"])
    sh = summaries.set_index(["model", "layer", "neuron"])["summary"].to_dict()
    total, bad, by_prop, tonal_template, n_summaries = 0, 0, Counter(), 0, 0
    split_cache: dict[str, list[tuple[str, set[str]]]] = {}
    for r in extremes.itertuples():
        text = sh.get((r.model, r.layer, r.neuron), "")
        if not text:
            continue
        n_summaries += 1
        if text not in split_cache:
            split_cache[text] = [(p, claims(p)) for p in split_points(text)]
        ids = list(r.topk_clip_ids)
        need = len(ids) // 2 + 1
        sub = holds.loc[ids]
        tonal_template += TONAL_TEMPLATE in text
        for _, props in split_cache[text]:
            for prop in props:
                total += 1
                if int(sub[prop].sum()) < need:
                    bad += 1
                    by_prop[prop] += 1
    return {"claims": total, "unsupported": bad, "by_property": dict(by_prop.most_common()),
            "summaries": n_summaries, "tonal_template": tonal_template}


# ---------- 4. ICL guesses, ties ----------
def is_guess(response: str) -> bool:
    """An ICL answer that names no class: the rule backend's "(a guess)" or an answer the engine rejects."""
    from and_engine.text.answers import is_no_answer
    from and_engine.text.prompts import parse_icl_answer

    return "(a guess)" in (response or "") or is_no_answer(parse_icl_answer(response or ""))


def icl_guesses(cache: pd.DataFrame, closed: pd.DataFrame, descriptions: pd.DataFrame) -> dict:
    """cache (prompt, response) of ICL prompts, rank-1 ICL rows, descriptions (model, layer, neuron, text)."""
    from and_engine.text.prompts import parse_prompt

    guess_of = {parse_prompt(p).description: is_guess(r) for p, r in zip(cache["prompt"], cache["response"])}
    rows = closed.merge(descriptions, on=["model", "layer", "neuron"], how="left")
    stored = int(sum(guess_of.get(" ".join(d.split()), False) for d in rows["description"].fillna("")))
    return {"cached_answers": len(cache), "cached_guesses": int(sum(guess_of.values())), "stored_icl": len(rows),
            "stored_guesses": stored}


def tied_neurons(closed_all: pd.DataFrame) -> dict:
    g = closed_all.groupby(["method", "similarity", "model", "layer", "neuron"])["score"].agg(["max", "min", "size"])
    tied = g[(g["size"] > 1) & (g["max"] == g["min"])]
    return tied.groupby(level=["method", "similarity"]).size().to_dict()


# ---------- 5. calibration ----------
def calibration_opposites(points: pd.DataFrame, thresholds: pd.DataFrame) -> dict:
    from and_engine.text.polarity import opposite

    p = points.merge(thresholds, on=["model", "layer", "neuron"])
    removed = p[p["best_cosine"] > p["threshold"]]
    opp = [opposite(a, b) for a, b in zip(removed["point"], removed["best_match"].fillna(""))]
    return {"points": len(p), "removed": len(removed), "removed_opposite": int(sum(opp))}


# ---------- 6. embedding score ----------
def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def embedding_scores(u: np.ndarray, expl_vecs: np.ndarray, caption_vecs: np.ndarray, topk: np.ndarray,
                     bottomk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """u (N clips, n) activations, expl_vecs (n, d) (NaN rows: no explanation), caption_vecs (N, d) ->
    (AUC (n,), Pearson r (n,)) on each neuron's scoring clips (all but its top-K and bottom-K)."""
    n_clips, n = u.shape
    sims = expl_vecs @ caption_vecs.T  # (n, N)
    auc, r = np.full(n, np.nan), np.full(n, np.nan)
    for j in range(n):
        if not np.isfinite(expl_vecs[j]).all():
            continue
        keep = np.ones(n_clips, bool)
        keep[topk[j]], keep[bottomk[j]] = False, False
        a, s = u[keep, j].astype(np.float64), sims[j, keep]
        if a.std() == 0 or s.std() == 0:
            continue
        order = np.lexsort((np.arange(len(a)), -a))
        positive = np.zeros(len(a), bool)
        positive[order[: max(1, len(a) // 10)]] = True
        auc[j], r[j] = _auc(s, positive), float(np.corrcoef(s, a)[0, 1])
    return auc, r


def derangement(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if n < 2 or not (perm == np.arange(n)).any():
            return perm


# ---------- loading and the report ----------
def _audio_side(cfg, clips: pd.DataFrame) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    """-> (mean YAMNet scores (N, 521), class names, measured features per clip) from the probing set's audio."""
    from and_engine.acoustics.measurements import measure_acoustics, relative_loudness
    from and_engine.backends.registry import CAPTION_SAMPLE_RATE, make
    from and_engine.probing import open_probing_set

    ps = open_probing_set(cfg.probing_set, cfg.resolve(cfg.probing_set.path))
    if ps.clips["rel_path"].tolist() != clips.sort_values("clip_id")["rel_path"].tolist():
        raise SystemExit("the configured probing set is not the one this database was built from")
    audio = ps.load_waveforms(CAPTION_SAMPLE_RATE, cfg.probing_set.clip_seconds)
    tagger = make("audio_tagger", "yamnet")
    feats = measure_acoustics(audio, CAPTION_SAMPLE_RATE)
    feats["relative_loudness"] = relative_loudness(feats["rms_db"].to_numpy(), feats["rms_db"].to_numpy())
    feats["clip_id"], feats["clip_seconds"] = ps.clips["clip_id"].to_numpy(), cfg.probing_set.clip_seconds
    return tagger.scores(audio), tagger.class_names, feats


def _trained_hidden(store, clips: pd.DataFrame) -> list[tuple[str, str]]:
    from and_engine.probing import classes_are_labels

    models = store.read("models", ["model", "class_names"])
    labels = sorted(clips["label"].unique())
    trained = [m for m, names in zip(models["model"], models["class_names"]) if classes_are_labels(list(names), labels)]
    layers = store.read("layers", ["model", "layer", "kind"])
    return [(m, lay) for m, lay, kind in layers.itertuples(index=False) if m in trained and kind != "classifier"]


def _embedding_table(store, cfg, captions: pd.DataFrame, extremes: pd.DataFrame,
                     calibrated: pd.DataFrame) -> pd.DataFrame:
    from and_engine.backends.registry import make

    encoder = make("text_encoder", cfg.module_a.text_encoder)
    cap_vecs = encoder.encode(captions.sort_values("clip_id")["caption"].tolist()).astype(np.float64)
    rows = []
    for (model, layer), ext in extremes.groupby(["model", "layer"], sort=False):
        ext = ext.sort_values("neuron")
        texts = calibrated.set_index(["model", "layer", "neuron"])["calibrated_summary"]
        expl = [texts.get((model, layer, int(n)), "") or "" for n in ext["neuron"]]
        have = np.flatnonzero([bool(t.strip()) for t in expl])
        if len(have) < 2:
            continue
        vecs = np.full((len(expl), cap_vecs.shape[1]), np.nan)
        vecs[have] = encoder.encode([expl[i] for i in have])
        shuffled = np.full_like(vecs, np.nan)
        shuffled[have] = vecs[have][derangement(len(have))]
        u = store.read_activations(model, layer)[:, ext["neuron"].to_numpy()]
        topk, bottomk = np.stack(ext["topk_clip_ids"]), np.stack(ext["bottomk_clip_ids"])
        auc, r = embedding_scores(u, vecs, cap_vecs, topk, bottomk)
        auc_s, r_s = embedding_scores(u, shuffled, cap_vecs, topk, bottomk)
        rows.append((model, layer, int(np.isfinite(auc).sum()), np.nanmean(auc), np.nanmean(auc_s), np.nanmean(r),
                     np.nanmean(r_s)))
    return pd.DataFrame(rows, columns=["model", "layer", "n", "auc", "auc_shuffled", "r", "r_shuffled"])


def stored_scores(store) -> pd.DataFrame:
    """The scores stage's per-layer means of S_h^c and its shuffled control -> (scorer, model, layer, auc,
    auc_shuffled, r, r_shuffled); empty when the database has no stored scores."""
    from and_engine.store.schema import SOURCE_CALIBRATED, SOURCE_SHUFFLED

    has = store.query_df("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'score_summary'")
    if not int(has["n"].iloc[0]):
        return pd.DataFrame()
    s = store.read("score_summary", ["model", "layer", "source", "scorer", "metric", "mean"],
                   source=[SOURCE_CALIBRATED, SOURCE_SHUFFLED], metric=["auc", "pearson_r"])
    if s.empty:
        return pd.DataFrame()
    s["col"] = s["metric"].map({"auc": "auc", "pearson_r": "r"}) + np.where(s["source"] == SOURCE_SHUFFLED,
                                                                             "_shuffled", "")
    wide = s.pivot_table(index=["scorer", "model", "layer"], columns="col", values="mean").reset_index()
    return wide.reindex(columns=["scorer", "model", "layer", "auc", "auc_shuffled", "r", "r_shuffled"])


def print_embedding(table: pd.DataFrame, title: str) -> None:
    above = (table["auc"] > table["auc_shuffled"]).sum()
    print(f"\n6. {title}")
    print(f"   layers where AUC(S_h^c) > AUC(shuffled): {above} / {len(table)}; "
          f"where r(S_h^c) > r(shuffled): {(table['r'] > table['r_shuffled']).sum()} / {len(table)}")
    print(table.groupby("model")[["auc", "auc_shuffled", "r", "r_shuffled"]].mean().round(3).to_string())
    worse = table[~(table["auc"] > table["auc_shuffled"])]
    if len(worse):
        print("   layers at or below the shuffled control:")
        print(worse.round(3).to_string(index=False))


def _pct(a: float, b: float) -> str:
    return f"{a:,} / {b:,} = {100 * a / b:.1f} %" if b else f"{a} / 0"


def main() -> None:
    from and_engine.config import load_config
    from and_engine.store.results import ResultsStore
    from and_engine.text.prompts import ICL_INSTRUCTION

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("database")
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo.toml"))
    ap.add_argument("--label-words", default=str(ROOT / "benchmarks" / "label_words.csv"))
    ap.add_argument("--no-embedding", action="store_true", help="skip the embedding scores (item 6)")
    ap.add_argument("--own-embedding", action="store_true",
                    help="compute item 6 here even where the database holds the scores stage's results")
    args = ap.parse_args()
    cfg = load_config(args.config)
    store = ResultsStore(args.database, read_only=True)
    clips = store.read("clips", ["clip_id", "rel_path", "label"], order_by=["clip_id"])
    words = label_words(Path(args.label_words), sorted(clips["label"].unique()))
    captions = store.read("captions", ["clip_id", "caption"], order_by=["clip_id"])
    extremes = store.read("extremes", ["model", "layer", "neuron", "topk_clip_ids", "bottomk_clip_ids"])
    summaries = store.read("summaries", ["model", "layer", "neuron", "summary"], side="top")
    mean_scores, class_names, feats = _audio_side(cfg, clips)
    print(f"database {args.database}: {len(clips)} clips, {len(extremes):,} neurons, "
          f"{clips['label'].nunique()} labels")

    c = caption_naming(clips, captions, mean_scores, class_names, words)
    print("\n1. captions naming their clip's labelled source")
    print(f"   captions name the source: {_pct(c['n_name'], c['clips'])}")
    print(f"   tagger ceiling (YAMNet mean over the clip): top-1 {100 * c['tagger_top1']:.1f} %, top-3 "
          f"{100 * c['tagger_top3']:.1f} %, top-5 {100 * c['tagger_top5']:.1f} %")
    print(f"   of the {c['n_top3']} clips whose tagger top 3 names it, captions name it: {100 * c['of_top3']:.1f} %")

    keys = pd.DataFrame(_trained_hidden(store, clips), columns=["model", "layer"])
    which = "trained variants, hidden layers"
    if keys.empty:  # no trained variant (e.g. pretrained YAMNet on a folder): every model's hidden layers
        layers = store.read("layers", ["model", "layer", "kind"])
        keys, which = layers.loc[layers["kind"] != "classifier", ["model", "layer"]], "every model, hidden layers"
    ext_th = extremes.merge(keys, on=["model", "layer"])
    s = summary_naming(ext_th, summaries, clips, captions, words)
    k = len(extremes.iloc[0]["topk_clip_ids"])
    print(f"\n2. S_h naming the source ({which})")
    print(f"   >= {k - 1} of K top clips one label and >= 3 captions naming it: "
          f"S_h names it {_pct(s['strict_hit'], s['strict'])}")
    print(f"   >= 3 of K captions naming one label (any purity): S_h names it {_pct(s['loose_hit'], s['loose'])}")

    for title, ext in (("every neuron", extremes), (which, ext_th)):
        a = claim_support(ext, summaries, feats)
        print(f"\n3. acoustic claims of S_h ({title}; {a['summaries']:,} non-empty S_h)")
        print(f"   unsupported by a majority of the top-K clips' measurements: {_pct(a['unsupported'], a['claims'])}")
        print(f"   by property: {a['by_property']}")
        print(f"   S_h with the template '{TONAL_TEMPLATE}': {_pct(a['tonal_template'], a['summaries'])}")

    head = ICL_INSTRUCTION.split("[", 1)[0]
    cache = store.query_df("SELECT prompt, response FROM llm_cache WHERE starts_with(prompt, ?)", [head])
    closed = store.read("closed_concepts", ["model", "layer", "neuron", "method", "similarity", "rank", "score"])
    icl = closed[(closed["method"] == "ICL") & (closed["rank"] == 1)][["model", "layer", "neuron"]]
    step = store.query_df("SELECT params_json FROM steps WHERE stage = 'module_a_icl' LIMIT 1")
    side = json.loads(step["params_json"].iloc[0]).get("icl_summary", "top") if len(step) else "top"
    if side == "calibrated":
        desc = store.read("calibrated_summaries", ["model", "layer", "neuron", "calibrated_summary"])
    else:
        desc = summaries
    desc = desc.set_axis(["model", "layer", "neuron", "description"], axis=1)
    g = icl_guesses(cache, icl, desc)
    print("\n4. ICL answers naming no class")
    print(f"   in the LLM cache: {g['cached_guesses']:,} of {g['cached_answers']:,} ICL answers")
    print(f"   stored as a concept: {g['stored_guesses']:,} of {g['stored_icl']:,} neurons with an ICL concept "
          f"(ICL read {'S_h^c' if side == 'calibrated' else 'S_h'})")
    print(f"   neurons whose stored top-n concepts all tie, by (method, similarity): {tied_neurons(closed) or 'none'}")

    points = store.read("calibration_points", ["model", "layer", "neuron", "point", "best_match", "best_cosine"])
    calibrated = store.read("calibrated_summaries", ["model", "layer", "neuron", "threshold", "calibrated_summary"])
    o = calibration_opposites(points, calibrated[["model", "layer", "neuron", "threshold"]])
    print("\n5. calibration")
    print(f"   removed S_h points: {_pct(o['removed'], o['points'])}; removed because S_l holds their opposite: "
          f"{_pct(o['removed_opposite'], o['removed'])}")

    if args.no_embedding:
        return
    stored = stored_scores(store)
    for scorer, table in stored.groupby("scorer", sort=True) if len(stored) else ():
        print_embedding(table.drop(columns="scorer"), f"{scorer} score of S_h^c vs the shuffled control (stored by "
                        "the scores stage; mean per layer)")
    if stored.empty or args.own_embedding:
        table = _embedding_table(store, cfg, captions, extremes, calibrated)
        print_embedding(table, f"embedding score of S_h^c vs a shuffled S_h^c (computed here, "
                        f"{cfg.module_a.text_encoder}; mean per layer)")

if __name__ == "__main__":
    main()
