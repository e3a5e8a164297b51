"""Plain-text report of the analyses (``python -m and_engine report --config ...``).

Per model: Table 2 (last-layer accuracy, method x similarity: top-1 / top-5 / concept cosine), Table 4
(OCP / DB / TAB / random: mean pruned, ΔA, ΔR, ΔA−ΔR in the paper's sign), then Figure 4 / 5 / 6 and
Appendix C in brief, and "which method explains best" (``explorer.scores.method_table``: the mean score of
each explanation source on clips it was not written from, and how often it names the labelled source). Global:
the caption-sentence clusters and how many captions name their clip's label. Reads only through the store.
"""

from __future__ import annotations

import math

import pandas as pd

from and_engine.analyses.common import per_block_means
from and_engine.explorer.scores import caption_rate, method_table
from and_engine.store.schema import ICL_SIMILARITY, SIMILARITIES

METHOD_ORDER = {"random": 0, "TAB": 1, "DB": 2, "OCP": 3, "ICL": 0}
SIM_ORDER = [*SIMILARITIES, ICL_SIMILARITY]


def _f(x, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned others, two-space gaps."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def fmt(r: list[str]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def table2(df: pd.DataFrame) -> str:
    """``lastlayer_accuracy`` rows of one model -> method x similarity grid of 'top1 / top5 / cos'."""
    sims = sorted(df["similarity"].astype(str).unique(),
                  key=lambda s: (SIM_ORDER.index(s) if s in SIM_ORDER else 99, s))
    methods = sorted(df["method"].astype(str).unique(), key=lambda m: (METHOD_ORDER.get(m, 9), m))
    cell = {(r.method, r.similarity): f"{r.top1:.0f} / {r.top5:.0f} / {r.concept_cosine:.2f}" for r in df.itertuples()}
    rows = [[m, *(cell.get((m, s), "") for s in sims)] for m in methods]
    return _table(["method \\ similarity (top-1 / top-5 / cos)", *sims], rows)


def table4(df: pd.DataFrame, per_class: pd.DataFrame | None = None) -> str:
    """``pruning_summary`` rows of one model -> the Table 4 layout; with ``pruning_per_class`` also how
    many target concepts had at least one neuron selected (a method that selects nothing scores 0)."""
    df = df.assign(_o=df["method"].map(lambda m: METHOD_ORDER.get(m, 9))).sort_values(["_o", "method"])
    hit = {}
    if per_class is not None and len(per_class):
        hit = per_class[per_class["n_pruned"] > 0].groupby("method")["target_concept"].nunique().to_dict()
    rows = [[r.method, f"{r.mean_pruned:.0f}", _f(r.delta_a), _f(r.delta_r), _f(r.delta_a_minus_r),
             f"{hit.get(r.method, 0)}/{r.n_concepts}" if per_class is not None else str(r.n_concepts)]
            for r in df.itertuples()]
    last = "concepts with neurons" if per_class is not None else "concepts"
    return _table(["method", "Avg pruned", "ΔA", "ΔR", "ΔA−ΔR ↑", last], rows)


def _figure4(df: pd.DataFrame) -> str:
    mean = df.groupby(["criterion", "percent"])["accuracy"].mean().unstack("percent")
    ref = mean.pop(0.0).dropna() if 0.0 in mean.columns else pd.Series(dtype=float)
    mean = mean.drop(index=[i for i in mean.index if i == "none"])
    order = {c: i for i, c in enumerate(["nouns", "adjectives", "verbs", "prepositions", "summary_length",
                                         "basic_adjectives", "high_level_adjectives"])}
    mean = mean.loc[sorted(mean.index, key=lambda c: (order.get(c, 8 if c != "random" else 9), c))]
    rows = [[c, *(_f(v, 1) for v in mean.loc[c])] for c in mean.index]
    head = f"unpruned accuracy {_f(float(ref.iloc[0]), 1)} %\n" if len(ref) else ""
    return head + _table(["criterion \\ % pruned (accuracy %, mean of seeds)", *(f"{p:g}" for p in mean.columns)], rows)


def best_methods(df: pd.DataFrame) -> str:
    """``method_table`` rows of one model -> the "which method explains best" layout, best first."""
    cols = [c for c in df.columns if c != "source"]
    rows = [[r["source"], *("-" if pd.isna(r[c]) else f"{r[c]:.0f}" if c == "neurons" or c.endswith("%")
                            else f"{r[c]:.2f}" for c in cols)] for _, r in df.iterrows()]
    return _table(["explanation", *cols], rows)


def _model_section(store, model: str) -> list[str]:
    out = [f"=== model {model} ==="]
    t2 = store.read("lastlayer_accuracy", model=model)
    out += ["Table 2 (last-layer dissection accuracy, %):", table2(t2) if len(t2) else "  (not computed: classes are "
            "not the concept set / probing labels, e.g. pretrained YAMNet's AudioSet outputs)", ""]
    t4 = store.read("pruning_summary", model=model)
    per_class = store.read("pruning_per_class", ["method", "target_concept", "n_pruned"], model=model)
    out += ["Table 4 (true-class logit change after pruning; ΔA−ΔR in the paper's sign = ΔR − ΔA, "
            "how much more the target drops):", table4(t4, per_class) if len(t4) else "  (not computed)", ""]
    fi = store.read("feature_importance", model=model)
    if len(fi):
        out += ["Figure 4 (held-out accuracy after pruning r % of described neurons):", _figure4(fi), ""]
    adj = store.read("adjective_stats", model=model)
    if len(adj):
        blocks = per_block_means(adj, "mean_adjectives")
        vals = ", ".join(f"{r.block}: {r.mean_adjectives:.2f}" for r in blocks.itertuples())
        out.append(f"Figure 5 (mean accepted adjectives per neuron, by block): {vals}")
    top = store.read("top_adjectives", model=model, order_by=["rank"])
    if len(top):
        out.append("Top adjectives (neurons): " + ", ".join(f"{r.adjective} ({r.n_neurons})" for r in top.itertuples()))
    interp = store.read("interpretability", model=model)
    for tau, grp in interp.groupby("tau"):
        g = per_block_means(grp, "pct_uninterpretable")
        vals = ", ".join(f"{r.block}: {r.pct_uninterpretable:.0f}%" for r in g.itertuples())
        out.append(f"Figure 6 (% uninterpretable by block, tau={tau}): {vals}")
    methods = method_table(store, model)
    if len(methods):
        out += ["", "Which method explains best (mean over neurons of the scores on clips each explanation was not "
                "written from: AUC 0.5 = chance, r 0 = chance; 'shuffled' = another neuron's S_h^c, the control; "
                "names label % = explanations naming the top-K majority label):", best_methods(methods), ""]
    ac = store.read("acoustic_check", model=model)
    for r in ac.itertuples():
        out.append(f"Appendix C: '{r.adjective}' {'in' if r.has_adjective else 'not in'} C_open: "
                   f"{r.n_neurons} neurons, top-K mean amplitude {_f(r.mean_amplitude, 4)}, "
                   f"median frequency {_f(r.mean_median_frequency_hz, 0)} Hz")
    return [*out, ""]


def format_report(store, models: list[str] | None = None) -> str:
    """The analyses of ``models`` (default: every model in the store) as plain text."""
    known = store.read("models", ["model"], order_by=["model"])["model"].astype(str).tolist()
    wanted = known if not models else list(models)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise ValueError(f"model(s) {unknown} not in the results database; it holds {known}")
    lines = ["AND Explorer — analyses report", ""]
    for model in wanted:
        lines += _model_section(store, model)
    hits, total = caption_rate(store)
    if total:
        lines.append(f"Captions that name their clip's label: {hits} / {total} = {100 * hits / total:.0f} %")
    words = store.read("cluster_words", order_by=["cluster", "weight"])
    if len(words):
        lines.append(f"Caption-sentence clusters (k = {words['cluster'].nunique()}):")
        for c, grp in words.groupby("cluster"):
            top = grp.sort_values("weight", ascending=False).head(6)["word"].tolist()
            lines.append(f"  cluster {c} ({int(grp['n_sentences'].iloc[0])} sentences): {', '.join(top)}")
    return "\n".join(lines).rstrip() + "\n"
