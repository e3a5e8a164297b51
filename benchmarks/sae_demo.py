"""SAE layers against the layers they were trained on, in a built database (docs/sae.md's tables; reads only).

Per SAE layer and its source layer: the SAE's reconstruction (FVE on all / typical / held-out vectors, L0,
dead and dense latents, and the held-out accuracy with the reconstruction spliced in for the source's output),
then per layer, over its *live* units (activation not constant over the probing clips; an SAE's dead latents
have no top-K to speak of): % uninterpretable (Algorithm 1, tau = 3, 4, 5), top-K label purity (mean share of
the top-K clips holding the most common label), the share of units whose top-K spans one class, and the
explanation scores (scores stage: median AUC of S_h^c by the embedding and audio-text scorers, and of the
shuffled control). ``--pruning`` adds Table 4 (ΔR − ΔA per method) restricted to the source layer's neurons
and to the SAE layer's latents, through the same pruning engine.

    python benchmarks/sae_demo.py --database data/build/demo-sae.duckdb [--pruning] [--config configs/demo-sae.toml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def unit_table(store, model: str, layer: str, membership: np.ndarray, labels: np.ndarray) -> dict:
    """One layer's live units -> Algorithm 1 at tau 3, 4, 5, top-K purity, one-class share, score medians."""
    from and_engine.analyses.clusters import interpretable

    acts = store.read_activations(model, layer)
    live = np.flatnonzero(acts.max(axis=0) > acts.min(axis=0))
    ext = store.read("extremes", ["neuron", "topk_clip_ids"], model=model, layer=layer, order_by=["neuron"])
    ext = ext[ext["neuron"].isin(live)]
    ids = np.stack([np.asarray(v, dtype=np.int64) for v in ext["topk_clip_ids"]])
    top_labels = labels[ids]
    purity = np.array([pd.Series(r).value_counts().iloc[0] / len(r) for r in top_labels])
    row = {"units": acts.shape[1], "live": len(live)}
    for tau in (3, 4, 5):
        row[f"uninterp_tau{tau}"] = 100.0 * float(np.mean(~interpretable(ids, membership, tau)))
    row["purity"] = float(purity.mean())
    row["one_class"] = 100.0 * float(np.mean(purity == 1.0))
    scores = store.read("explanation_scores", ["neuron", "source", "scorer", "auc"], model=model, layer=layer)
    scores = scores[scores["neuron"].isin(live)]
    for source, scorer, name in (("S_h^c", "embedding", "auc_emb"), ("S_h^c", "audio-text", "auc_audio"),
                                 ("shuffled", "embedding", "auc_emb_shuffled")):
        vals = scores.loc[(scores["source"] == source) & (scores["scorer"] == scorer), "auc"].dropna()
        row[name] = float(vals.median()) if len(vals) else float("nan")
    return row


def spliced_accuracy(target, source: str) -> float:
    """Held-out accuracy with the SAE's reconstruction in place of ``source``'s output (a pruning-engine edit)."""
    from and_engine.models.sae import attached_sae, reconstruction

    sae = attached_sae(target.model, source)
    logits = target.engine.edited_logits([{source: lambda y: reconstruction(sae, y)}])[0]
    return float(np.mean(logits.argmax(1) == target.labels))


def pruning_rows(store, target, model: str, layers: dict[str, int], config) -> pd.DataFrame:
    """Table 4 (pruning_summary rows) with the candidate layers restricted to ``layers``."""
    from and_engine.analyses.unlearning import run_table4

    closed, opened = store.read("closed_concepts", model=model), store.read("open_concepts", model=model)
    sims = {"DB": "cos", "TAB": "cos"}
    summary, _ = run_table4(target.model, target.waveforms, target.labels, list(target.model.class_names), closed,
                            opened, layers, sims, model, top_n=config.analyses.closed_top_n_for_pruning,
                            seed=config.run.seed, engine=target.engine)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=str(ROOT / "data" / "build" / "demo-sae.duckdb"))
    parser.add_argument("--pruning", action="store_true", help="also Table 4 on the source layer vs the SAE layer")
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo-sae.toml"),
                        help="used only when the database holds no finished build (its analyses still running)")
    parser.add_argument("--no-model", action="store_true",
                        help="read the database only: no held-out accuracy with the reconstruction spliced in "
                             "(needs the build's checkpoints) and no --pruning")
    args = parser.parse_args(argv)
    from and_engine.analyses import clusters
    from and_engine.explorer import aggregates, live, queries
    from and_engine.store.results import ResultsStore

    pd.set_option("display.width", 200)
    with ResultsStore(args.database, read_only=True) as store:
        metrics = store.read("sae_metrics", order_by=["model", "layer"])
        config = queries.run_config(store)
        if config is None:  # the core steps are there but the build has not finished: the configuration file
            from and_engine.config import load_config

            config = load_config(args.config)
        clips = store.read("clips", order_by=["clip_id"])
        labels = clips["label"].to_numpy()
        sents = store.read("caption_sentences", ["clip_id", "cluster"])
        membership = clusters.clip_cluster_matrix(sents, len(clips))
        recon, units, prune = [], [], []
        for m in metrics.itertuples():
            target = None if args.no_model else live.load_pruning_target(
                config, m.model, queries.clips(store).reset_index(), aggregates.sae_checkpoints(store, m.model))
            base = float(np.mean(target.engine.baseline.argmax(1) == target.labels)) if target else float("nan")
            recon.append({"model": m.model, "sae layer": m.layer, "latents": m.n_latents, "k": m.k,
                          "fve": m.fve, "fve_typical": m.fve_typical, "fve_heldout": m.fve_heldout, "l0": m.l0,
                          "dead": m.n_dead, "dense": m.n_dense, "outliers": f"{m.n_outliers}/{m.n_vectors}",
                          "acc": base,
                          "acc_spliced": spliced_accuracy(target, m.source_layer) if target else float("nan")})
            for layer in (m.source_layer, m.layer):
                units.append({"model": m.model, "layer": layer,
                              **unit_table(store, m.model, layer, membership, labels)})
            if args.pruning and target is not None:
                for layer, n in ((m.source_layer, m.n_inputs), (m.layer, m.n_latents)):
                    prune.append(pruning_rows(store, target, m.model, {layer: int(n)}, config).assign(layer=layer))
        print("== reconstruction (held-out accuracy: unchanged model vs the SAE's reconstruction spliced in)")
        print(pd.DataFrame(recon).round(3).to_string(index=False))
        print("\n== units (live units only; % uninterpretable = Algorithm 1; purity / one class: top-K labels; "
              "scores: median AUC of S_h^c)")
        print(pd.DataFrame(units).round(3).to_string(index=False))
        if prune:
            print("\n== pruning by concept restricted to one layer (Table 4: ΔR − ΔA, positive = concept-specific)")
            cols = ["model", "layer", "method", "mean_pruned", "delta_a", "delta_r", "delta_a_minus_r"]
            print(pd.concat(prune)[cols].round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
