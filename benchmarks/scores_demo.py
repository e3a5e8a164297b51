"""The scores and ground truth of a built database, as docs/scores.md reports them (reads only; no build).

* ground truth: the issue's table as the ``ground_truth`` stage computes it, over the trained variants'
  hidden layers (captions naming their clip's label; S_h / S_h^c naming the top-K majority label where
  >= 4/5 top-K clips share it and >= 3 captions name it; rank-1 closed concept = majority label, per method);
* score distributions per explanation source and scorer (all models, neuron-weighted), and
  S_h^c vs the shuffled control in every layer;
* the time the scores stage took per layer (from the ``steps`` table).

    python benchmarks/scores_demo.py                                   # data/build/demo.duckdb
    python benchmarks/scores_demo.py --database other.duckdb --models yamnet-frozen
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TRAINED = ("yamnet-frozen", "yamnet-finetuned", "ast-scratch")


def _rates(store, models: tuple[str, ...]) -> pd.DataFrame:
    from and_engine.explorer.scores import truth_rates

    r = truth_rates(store)
    layers = store.read("layers", ["model", "layer", "kind"])
    r = r.merge(layers, on=["model", "layer"])
    return r[r["model"].isin(models) & (r["kind"] != "classifier")]


def ground_truth(store, models: tuple[str, ...]) -> list[str]:
    from and_engine.explorer.scores import caption_rate

    hits, total = caption_rate(store)
    out = [f"captions naming their clip's label: {hits} / {total} = {100 * hits / max(total, 1):.0f} %"]
    r = _rates(store, models)
    agg = r.groupby(["measure", "source"])[["hits", "total"]].sum()
    for source in ("S_h", "S_h^c"):
        h, t = agg.loc[("names_majority_where_captions_do", source)]
        out.append(f"{source} names the majority label where >= 4/5 top-K share it and >= 3 captions name it: "
                   f"{h:,} / {t:,} = {100 * h / max(t, 1):.0f} %")
    per = r[r["measure"] == "names_majority"].groupby(["model", "source"])[["hits", "total"]].sum()
    per["pct"] = 100 * per["hits"] / per["total"]
    for method in ("DB", "TAB", "ICL"):
        rows = per[per.index.get_level_values("source").str.startswith(method)]
        out.append(f"rank-1 {method} concept = top-K majority label: {rows['pct'].min():.0f}-{rows['pct'].max():.0f} % "
                   "(range over models and similarity functions)")
    table = per["pct"].unstack("model").round(0)
    out += ["names the top-K majority label, % of neurons (hidden layers):", table.to_string()]
    return out


def distributions(store) -> list[str]:
    from and_engine.explorer.scores import method_table

    out = []
    for model in store.read("models", ["model"], order_by=["model"])["model"]:
        t = method_table(store, model)
        out += [f"-- {model}", t.round(2).to_string(index=False)]
    summ = store.read("score_summary", scorer="embedding", metric="auc")
    wide = summ.pivot_table(index=["model", "layer"], columns="source", values="median")
    if {"S_h^c", "shuffled"} <= set(wide.columns):
        above = (wide["S_h^c"] > wide["shuffled"]).sum()
        gap = (wide["S_h^c"] - wide["shuffled"])
        out.append(f"S_h^c median embedding AUC above the shuffled control in {above} / {len(wide)} layers "
                   f"(gap min {gap.min():.3f}, median {gap.median():.3f}, max {gap.max():.3f})")
        low = wide.loc[wide["S_h^c"] <= wide["shuffled"], ["S_h^c", "shuffled"]]
        if len(low):
            out += ["layers where it is not:", low.round(3).to_string()]
    return out


def timing(store) -> list[str]:
    steps = store.query_df("SELECT scope, epoch(finished_at - started_at) AS s, n_rows FROM steps "
                           "WHERE stage = 'scores'")
    layers = store.read("layers", ["model", "layer", "n_neurons"])
    steps["key"] = steps["scope"]
    layers["key"] = "layer=" + layers["layer"] + "/model=" + layers["model"]
    t = steps.merge(layers, on="key")
    per_k = t["s"].sum() / t["n_neurons"].sum() * 1000
    slow = t.loc[t["s"].idxmax()]
    return [f"scores stage: {t['s'].sum():.0f} s for {int(t['n_neurons'].sum()):,} neurons in {len(t)} layers "
            f"({per_k:.2f} s per 1,000 neurons; slowest layer {slow['s']:.1f} s, {int(slow['n_neurons'])} neurons)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=str(ROOT / "data" / "build" / "demo.duckdb"))
    parser.add_argument("--models", nargs="*", default=list(TRAINED), help="models of the ground-truth rows")
    args = parser.parse_args(argv)
    from and_engine.store.results import ResultsStore

    with ResultsStore(args.database, read_only=True) as store:
        for title, lines in (("ground truth (" + ", ".join(args.models) + "; hidden layers)",
                              ground_truth(store, tuple(args.models))),
                             ("which method explains best (mean over neurons, all layers)", distributions(store)),
                             ("time", timing(store))):
            print(f"== {title}")
            print("\n".join(lines))
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
