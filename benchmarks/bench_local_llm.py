"""Benchmark: rule vs a real local LLM (Qwen2.5-Coder-1.5B-Instruct, llama.cpp) as the summariser, judged by scores.

On a fixed seeded sample of neurons spread evenly over every model and layer of a finished database, both
summarisers get the summaries stage's own prompts (the stored captions of each neuron's top-K / bottom-K);
Module B calibrates both (the build's encoder and threshold). Each S_h and S_h^c is then scored as the
scores stage scores explanations (``stages/scores``: embedding and audio-text AUC and r on the same scoring
sets the build draws) and checked against the top-K majority label (``stages/ground_truth``, the label words
of ``benchmarks/label_words.csv``). Paired differences (local LLM - rule) get a bootstrap 95 % CI over neurons.
The LLM's answers go to the app's live cache (``run.live_llm_database``: the neuron page then shows them),
with the seconds each took in ``<cache>.times.csv``, so a rerun (or an interrupted run) asks only what is new.

    nice python benchmarks/bench_local_llm.py --database data/build/demo.duckdb             # 200 neurons
    nice python benchmarks/bench_local_llm.py --generate-only     # only fill the cache (no scoring code needed)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sample_neurons(layers: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """layers (model, layer, n_neurons) -> n (model, layer, neuron) rows: n // L per layer, the remainder to a
    seeded draw of layers, neurons drawn without replacement; the same seed gives the same sample."""
    rng = np.random.default_rng(seed)
    layers = layers.sort_values(["model", "layer"]).reset_index(drop=True)
    extra = set(rng.choice(len(layers), size=n % len(layers), replace=False).tolist()) if len(layers) else set()
    rows = []
    for i, r in layers.iterrows():
        k = min(n // len(layers) + (i in extra), int(r["n_neurons"]))
        rows += [(r["model"], r["layer"], int(j)) for j in sorted(rng.choice(int(r["n_neurons"]), k, replace=False))]
    return pd.DataFrame(rows, columns=["model", "layer", "neuron"])


class Timed:
    """An LLM backend that times each answer (``seconds``) and, with a ``log``, appends (sha256 of the prompt,
    seconds, answer characters) to that CSV."""

    def __init__(self, llm, log: Path | None = None):
        self.llm, self.log, self.seconds = llm, log, []

    def describe(self) -> dict:
        return self.llm.describe()

    def generate(self, prompts: list[str]) -> list[str]:
        out = []
        for p in prompts:
            t0 = time.perf_counter()
            out += self.llm.generate([p])
            self.seconds.append(time.perf_counter() - t0)
            if self.log is not None:
                with self.log.open("a", newline="") as fh:
                    csv.writer(fh).writerow([_digest(p), f"{self.seconds[-1]:.3f}", len(out[-1])])
                print(f"  answered {len(out)}/{len(prompts)} in {self.seconds[-1]:.1f} s", flush=True)
        return out


def _digest(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


def summarise(store, sample: pd.DataFrame, llm, cache_get, cache_put) -> pd.DataFrame:
    """The sample's S_h / S_l by ``llm`` through the summaries stage (answers cached) -> summaries rows + prompt."""
    from and_engine.backends.llm import CachedLLM
    from and_engine.stages.summaries import compute_summaries, summary_prompts
    from and_engine.text.prompts import SUMMARY_TEMPLATE_ID

    cached = CachedLLM(llm, cache_get, cache_put, template=SUMMARY_TEMPLATE_ID, chunk_size=1)
    captions = store.read("captions", ["clip_id", "caption"], order_by=["clip_id"])
    out = []
    for (model, layer), part in sample.groupby(["model", "layer"], sort=True):
        ext = store.read("extremes", ["model", "layer", "neuron", "topk_clip_ids", "bottomk_clip_ids"], model=model,
                         layer=layer, neuron=part["neuron"].tolist(), order_by=["neuron"])
        rows = compute_summaries(ext, captions, [(part["neuron"].to_numpy(), cached)])
        prompts = summary_prompts(ext, captions)
        out.append(rows.merge(prompts, on=["model", "layer", "neuron", "side"]))
    return pd.concat(out, ignore_index=True)


def answered(store, sample: pd.DataFrame, key, cache_get) -> pd.DataFrame:
    """The rows of ``sample`` whose two prompts (S_h and S_l) both have an answer in the cache (``key(prompt)``:
    the cache key the LLM's ``CachedLLM`` gives a prompt) -> a sub-sample, in the same order."""
    from and_engine.stages.summaries import summary_prompts

    captions = store.read("captions", ["clip_id", "caption"], order_by=["clip_id"])
    keep = []
    for (model, layer), part in sample.groupby(["model", "layer"], sort=True):
        ext = store.read("extremes", ["model", "layer", "neuron", "topk_clip_ids", "bottomk_clip_ids"], model=model,
                         layer=layer, neuron=part["neuron"].tolist(), order_by=["neuron"])
        prompts = summary_prompts(ext, captions)
        prompts["key"] = [key(p) for p in prompts["prompt"]]
        prompts["done"] = prompts["key"].isin(set(cache_get(prompts["key"].tolist())))
        done = prompts.groupby("neuron")["done"].all()
        keep += [(model, layer, int(n)) for n in done[done].index]
    keep_set = set(keep)
    return sample[[(m, la, int(n)) in keep_set for m, la, n in sample.itertuples(index=False)]].reset_index(drop=True)


def calibrate(summaries: pd.DataFrame, encoder, threshold: float) -> pd.DataFrame:
    """summaries rows -> (model, layer, neuron, calibrated_summary, n_points, n_removed) by Module B."""
    from and_engine.stages.module_b import calibrated_summaries, calibration_points

    out = []
    for (model, layer), part in summaries.groupby(["model", "layer"], sort=True):
        pts = calibration_points(part, encoder, model=model, layer=layer)
        out.append(calibrated_summaries(pts, part["neuron"].unique(), threshold, model=model, layer=layer))
    return pd.concat(out, ignore_index=True)


def timings(log: Path, prompts: pd.Series) -> np.ndarray:
    """Seconds per answer of the sample's prompts (the latest record of each) from the timing CSV."""
    if not log.is_file():
        return np.array([])
    rec = pd.read_csv(log, names=["digest", "seconds", "chars"]).drop_duplicates("digest", keep="last")
    want = {_digest(p) for p in prompts}
    return rec.loc[rec["digest"].isin(want), "seconds"].to_numpy(dtype=np.float64)


def bootstrap_ci(d: np.ndarray, seed: int, n_boot: int = 10_000) -> tuple[float, float]:
    """95 % percentile bootstrap CI of the mean of paired differences ``d`` (resampling neurons)."""
    if len(d) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


SOURCES = ("S_h", "S_h^c")
SUMMARISERS = ("rule", "local")


def explanations(summ: dict[str, pd.DataFrame], cal: dict[str, pd.DataFrame], seed: int) -> pd.DataFrame:
    """Both summarisers' S_h (usable answers) and S_h^c (non-empty) + ``shuffled`` (another sampled neuron's rule
    S_h^c, the chance control) -> (model, layer, neuron, summariser, source, explanation)."""
    from and_engine.stages.explanations import USABLE_SUMMARY

    parts = []
    for name in SUMMARISERS:
        top = summ[name][(summ[name]["side"] == "top") & summ[name]["status"].isin(USABLE_SUMMARY)]
        parts.append(top.assign(summariser=name, source="S_h", explanation=top["summary"]))
        c = cal[name][cal[name]["calibrated_summary"].str.strip() != ""]
        parts.append(c.assign(summariser=name, source="S_h^c", explanation=c["calibrated_summary"]))
    rule_c = parts[1].reset_index(drop=True)
    perm = np.random.default_rng(seed).permutation(len(rule_c))
    other = rule_c.iloc[np.roll(perm, 1)]["explanation"].to_numpy()
    shuffled = rule_c.iloc[perm].assign(summariser="rule", source="shuffled", explanation=other)
    cols = ["model", "layer", "neuron", "summariser", "source", "explanation"]
    out = pd.concat([p[cols] for p in parts] + [shuffled[cols]], ignore_index=True)
    return out[out["explanation"].str.strip() != ""].reset_index(drop=True)


def score(store, cfg, expl: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each explanation's embedding and audio-text AUC and r on its neuron's scoring set (the stored one, else
    drawn as the scores stage draws it) -> ``expl`` + one column per scorer and metric."""
    from and_engine.backends.registry import CAPTION_SAMPLE_RATE, make
    from and_engine.explorer.live import audio_root
    from and_engine.explorer.media import load_clip
    from and_engine.stages.scores import separation, similarity_at_sets, text_vectors, unique_texts
    from and_engine.stages.scoring_sets import ScoringSets, draw_scoring_sets, layer_rng

    sc = cfg.scores
    encoder = make("text_encoder", sc.text_encoder)
    audio = make("audio_text", sc.audio_text_model, {"text_encoder": make("text_encoder", "minilm")})
    clips = store.read("clips", ["clip_id", "rel_path"], order_by=["clip_id"])
    captions = store.read("captions", ["caption"], order_by=["clip_id"])["caption"].fillna("").tolist()
    t0 = time.perf_counter()
    waves = np.stack([load_clip(audio_root(cfg), p, CAPTION_SAMPLE_RATE, cfg.probing_set.clip_seconds)
                      for p in clips["rel_path"]])
    clip_emb = {"embedding": (encoder.encode(captions), encoder.encode),
                "audio-text": (audio.audio_embeddings(waves), audio.text_embeddings)}
    print(f"clips embedded for both scorers in {time.perf_counter() - t0:.0f} s", flush=True)
    stored = "scoring_sets" in set(store.query_df("SELECT table_name FROM information_schema.tables")["table_name"])
    out = []
    for (model, layer), part in expl.groupby(["model", "layer"], sort=True):
        u = store.read_activations(model, layer)
        rows = store.read("scoring_sets", ["neuron", "clip_ids", "activating"], model=model,
                          layer=layer) if stored else pd.DataFrame()
        if len(rows):
            sets = ScoringSets.from_frame(rows, u.shape[1])
        else:
            k = len(store.read("extremes", ["topk_clip_ids"], model=model, layer=layer, neuron=0)["topk_clip_ids"][0])
            sets = draw_scoring_sets(u, k, sc.n_activating, sc.n_non_activating, sc.activating_fraction,
                                     layer_rng(cfg.run.seed, model, layer))
        part = part.reset_index(drop=True)
        idx_rows = part["neuron"].to_numpy(dtype=np.int64)
        uniq, idx = unique_texts(part["explanation"])
        for scorer, (emb, embed) in clip_emb.items():
            auc, r = separation(similarity_at_sets(text_vectors(uniq, embed), idx, idx_rows, emb, sets), idx_rows,
                                sets, u)
            part[f"{scorer} AUC"], part[f"{scorer} r"] = auc, r
        out.append(part)
    return pd.concat(out, ignore_index=True)


def ground_truth(store, sample: pd.DataFrame, expl: pd.DataFrame) -> pd.DataFrame:
    """``expl`` + ``names label`` (names the top-K majority label) and ``clear`` (>= 4/5 top-K share the label and
    a majority of the top-K captions name it), by the ground-truth stage's functions."""
    from and_engine.stages import ground_truth as gt
    from and_engine.text.labels import read_label_words

    table = read_label_words(ROOT / "benchmarks" / "label_words.csv")
    clips, caps = store.read("clips", ["clip_id", "label"]), store.read("captions", ["clip_id", "caption"])
    out = []
    for (model, layer), part in expl.groupby(["model", "layer"], sort=True):
        ext = store.read("extremes", ["neuron", "topk_clip_ids"], model=model, layer=layer,
                         neuron=sorted(set(part["neuron"])), order_by=["neuron"])
        truth = gt.neuron_truth(ext, clips, caps, table, model=model, layer=layer).set_index("neuron")
        k = len(ext["topk_clip_ids"].iloc[0])
        named = gt.explanation_truth(part.assign(source="S_h"), truth.reset_index(), table)["names_majority"]
        clear = (truth["purity"] >= gt.PURE_SHARE - 1e-9) & (truth["n_naming_captions"] >= gt.captions_needed(k))
        out.append(part.assign(**{"names label": named.to_numpy(dtype=float),
                                  "clear": part["neuron"].map(clear).to_numpy(dtype=bool)}))
    return pd.concat(out, ignore_index=True)


def paired_table(scored: pd.DataFrame, seed: int) -> list[str]:
    """Per explanation source and score: rule mean, local mean, mean paired difference with its bootstrap CI, and
    how many neurons the local LLM's explanation scored higher / lower -> markdown table lines."""
    lines = ["| explanation | score | neurons | rule | local LLM | local - rule [95 % CI] | local higher / lower |",
             "|---|---|---|---|---|---|---|"]
    keys = ["model", "layer", "neuron"]
    metrics = ["embedding AUC", "embedding r", "audio-text AUC", "audio-text r", "names label"]
    for source in SOURCES:
        s = scored[scored["source"] == source]
        wide = s[s["summariser"] == "rule"].merge(s[s["summariser"] == "local"], on=keys, suffixes=("_r", "_l"))
        for metric in [*metrics, "names label where captions do"]:
            col, w = ("names label", wide[wide["clear_r"]]) if metric.endswith("captions do") else (metric, wide)
            pair = w[[f"{col}_r", f"{col}_l"]].dropna().to_numpy(dtype=np.float64)
            if not len(pair):
                continue
            d = pair[:, 1] - pair[:, 0]
            lo, hi = bootstrap_ci(d, seed)
            pct, unit, f = (100.0, " %", ".1f") if col == "names label" else (1.0, "", ".3f")
            lines.append(f"| {source} | {metric} | {len(d)} | {pct * pair[:, 0].mean():{f}}{unit} | "
                         f"{pct * pair[:, 1].mean():{f}}{unit} | {pct * d.mean():+{f}} "
                         f"[{pct * lo:+{f}}, {pct * hi:+{f}}]{unit} | {int((d > 0).sum())} / {int((d < 0).sum())} |")
    sh = scored[scored["source"] == "shuffled"]
    lines.append(f"| shuffled (another sampled neuron's rule S_h^c) | embedding AUC / audio-text AUC | {len(sh)} | "
                 f"{sh['embedding AUC'].mean():.3f} / {sh['audio-text AUC'].mean():.3f} | | | |")
    return lines


def text_table(summ: dict[str, pd.DataFrame], cal: dict[str, pd.DataFrame], seconds: dict[str, np.ndarray]
               ) -> list[str]:
    """Per summariser: answer statuses, words per S_h, S_h^c points removed, seconds per summary -> markdown."""
    lines = ["| summariser | S_h / S_l answers: ok / empty / garbage / truncated | words per S_h | "
             "S_h points removed by calibration | empty S_h^c | seconds per summary: median / mean / p90 (n) |",
             "|---|---|---|---|---|---|"]
    for name, label in (("rule", "rule (embedded)"), ("local", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M, llama.cpp")):
        st = summ[name]["status"].value_counts()
        words = summ[name].loc[summ[name]["side"] == "top", "summary"].str.split().str.len().mean()
        c, t = cal[name], seconds[name]
        tim = (f"{np.median(t):.3g} / {t.mean():.3g} / {np.quantile(t, 0.9):.3g} ({len(t)})" if len(t) else "-")
        counts = " / ".join(str(int(st.get(k, 0))) for k in ("ok", "empty", "garbage", "truncated"))
        empty = int((c["calibrated_summary"].str.strip() == "").sum())
        lines.append(f"| {label} | {counts} | {words:.0f} | {int(c['n_removed'].sum())} of "
                     f"{int(c['n_points'].sum())} | {empty} of {len(c)} | {tim} |")
    return lines


def main() -> None:
    from and_engine.backends.registry import make
    from and_engine.config import config_from_dict
    from and_engine.explorer import local_llm
    from and_engine.explorer.queries import run_config
    from and_engine.store.live_cache import LiveCache
    from and_engine.store.results import ResultsStore

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database", default=str(ROOT / "data/build/demo.duckdb"), help="a finished results database")
    ap.add_argument("--neurons", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gguf", default="", help="the GGUF file (default: local_llm.gguf_path)")
    ap.add_argument("--cache", default="", help="the live LLM cache (default: run.live_llm_database)")
    ap.add_argument("--generate-only", action="store_true", help="only fill the cache with the LLM's answers")
    ap.add_argument("--answered-only", action="store_true",
                    help="score only the sampled neurons whose answers are all in the cache (no LLM call)")
    ap.add_argument("--out", default="", help="also write the markdown report here")
    args = ap.parse_args()

    store = ResultsStore(args.database, read_only=True)
    cfg = run_config(store) or config_from_dict({})
    gguf = Path(args.gguf) if args.gguf else local_llm.gguf_path(cfg)
    if why := local_llm.unavailable(gguf):
        sys.exit(why + f"\n  {local_llm.INSTALL}")
    cache = LiveCache(args.cache or cfg.resolve(cfg.run.live_llm_database))
    log = Path(str(cache.path) + ".times.csv")
    sample = sample_neurons(store.read("layers", ["model", "layer", "n_neurons"]), args.neurons, args.seed)
    llm = Timed(local_llm.make_local_llm(gguf), log)
    if args.answered_only:
        from and_engine.backends.llm import CachedLLM
        from and_engine.text.prompts import SUMMARY_TEMPLATE_ID

        n_sampled = len(sample)
        key = CachedLLM(llm, cache.cache_get, cache.cache_put, template=SUMMARY_TEMPLATE_ID).key
        sample = answered(store, sample, key, cache.cache_get)
        print(f"{len(sample)} of the {n_sampled} sampled neurons have both answers in the cache", flush=True)
    print(f"{len(sample)} neurons in {sample.groupby(['model', 'layer']).ngroups} layers of {args.database}; "
          f"answers cached in {cache.path}", flush=True)
    t0 = time.perf_counter()
    summ = {"local": summarise(store, sample, llm, cache.cache_get,
                               cache.cache_put)}
    print(f"local LLM summaries: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.generate_only:
        return
    mem: dict[str, str] = {}
    rule = Timed(make("llm", "rule"))
    summ["rule"] = summarise(store, sample, rule, lambda keys: {k: mem[k] for k in keys if k in mem},
                             lambda rows: mem.update({r["cache_key"]: r["response"] for r in rows}))
    encoder = make("text_encoder", cfg.module_b.sentence_encoder)
    cal = {k: calibrate(v, encoder, cfg.module_b.threshold) for k, v in summ.items()}
    scored = ground_truth(store, sample, score(store, cfg, explanations(summ, cal, args.seed), cfg.run.seed))
    seconds = {"local": timings(log, summ["local"]["prompt"].drop_duplicates()), "rule": np.array(rule.seconds)}
    text = "\n".join([
        f"Sample: {len(sample)} neurons (seed {args.seed}"
        f"{f'; the {len(sample)} of {args.neurons} sampled whose LLM answers were done' if args.answered_only else ''})"
        f" spread over the {sample.groupby(['model', 'layer']).ngroups}"
        f" layers of `{Path(args.database).name}`; the same stored captions and prompts for both summarisers; "
        f"Module B at t = {cfg.module_b.threshold} ({cfg.module_b.sentence_encoder}); scores on the build's scoring "
        f"sets ({cfg.scores.n_activating} + {cfg.scores.n_non_activating} clips).", "",
        *paired_table(scored, args.seed), "", *text_table(summ, cal, seconds)])
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
