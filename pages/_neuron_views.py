"""The Neuron page's views beyond its explanation (issue 15): activation density, related neurons, the effect on
the output, clips from every activation quantile, and the neuron's download. Widgets only: every value comes
from ``and_engine.explorer``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from and_engine.explorer import (
    aggregates,
    availability,
    charts,
    distribution,
    effect,
    export,
    live,
    queries,
    related,
    scores,
    svg_charts,
)
from and_engine.store.results import ResultsStore, StoreError
from pages._shared import change_text, clip_media, download, md, per_version, pruning_target, results_path


@dataclass
class NeuronRest:
    """What the Neuron page shows below its main content, read before any of it is sent (``read_rest``)."""

    histogram: str  # SVG (svg_charts.activation_histogram)
    closed: pd.DataFrame  # queries.closed_concepts_table
    opened: pd.DataFrame  # queries.open_concepts
    truth: dict | None  # scores.neuron_truth
    related: pd.DataFrame | None  # related.related; None: the database predates the stage
    clips: dict  # clip_id -> ClipMedia or why not, of the top-K / bottom-K and the quantile clips
    images: dict[int, tuple[bytes, str]]  # clip_id -> (JPEG, its caption): spectrogram (+ the neuron's map)
    has_maps: bool  # whether the layer keeps time x frequency maps
    quantiles: pd.DataFrame  # quantile_clips, highest bin first, with each clip's label and caption


def read_rest(db, cfg, model: str, layer: str, neuron: int, ext: pd.DataFrame, values: np.ndarray,
              sample_rate: int) -> NeuronRest:
    """Read and draw everything below the page's main content (while a fresh tab draws that), so the rest is sent
    in one burst: the browser passes over the whole page once per burst of elements it receives."""
    top, bottom = ext[ext["side"] == "top"], ext[ext["side"] == "bottom"]
    picked = quantile_clips(values, model, layer, neuron).sort_values(["bin", "activation"], ascending=False)
    info = queries.clips(db, picked["clip_id"].tolist())
    quantiles = picked.join(info[["label", "caption"]], on="clip_id")
    maps = queries.activation_maps(db, model, layer, neuron)
    shown = pd.concat([ext[["clip_id", "rel_path"]], info.reset_index()[["clip_id", "rel_path"]]])
    clips = clip_media(db, cfg, sample_rate, shown.drop_duplicates("clip_id"))  # one read for all 20 clips
    images = {}
    for r in ext.itertuples():
        clip, amap = clips[int(r.clip_id)], maps.get(int(r.clip_id)) if r.side == "top" else None
        if not isinstance(clip, str):
            images[int(r.clip_id)] = (charts.clip_image(clip.spectrogram, amap),
                                      "spectrogram" + (" + neuron map" if amap is not None else ""))
    return NeuronRest(
        histogram=svg_charts.activation_histogram(values, top["activation"].to_numpy(),
                                                  bottom["activation"].to_numpy()),
        closed=queries.closed_concepts_table(db, model, layer, neuron),
        opened=queries.open_concepts(db, model, layer, neuron),
        truth=scores.neuron_truth(db, model, layer, neuron),
        related=related.related(db, model, layer, neuron) if per_version(related.has_related, db) else None,
        clips=clips, images=images, has_maps=bool(maps), quantiles=quantiles)


@st.cache_data(show_spinner=False, max_entries=64, ttl=600)
def _layer_density(db_path: str, db_mtime: float, model: str, layer: str, threshold: float, _db) -> dict:
    return distribution.layer_density(_db, model, layer, threshold)


def density_section(db, model: str, layer: str, values: np.ndarray) -> None:
    """Share of the probing clips the neuron fires on, its dead / always-on flag and the layer's counts."""
    st.subheader("Activation density")
    c1, c2, c3, c4 = st.columns(4)
    threshold = c1.number_input("fires when the activation is above", value=distribution.DENSITY_THRESHOLD,
                                step=0.1, format="%.2f", key="nr_density_t",
                                help="The stored activations are the layer's pooled outputs (before the "
                                     "non-linearity for conv / linear layers).")
    d = distribution.density(values, threshold)
    c2.metric("density", f"{d.share_above:.1%}", help=f"share of the {d.n_clips} probing clips above the threshold")
    c3.metric("flag", "dead" if d.dead else "always on" if d.always_on else "—",
              help="dead: above the threshold on no probing clip; always on: on every one")
    path = results_path()
    counts = _layer_density(str(path), path.stat().st_mtime, model, layer, float(threshold), db)
    c4.metric("layer: dead · always on", f"{counts['dead']} · {counts['always_on']}",
              help=f"of the layer's {counts['n_neurons']} neurons, at this threshold: how many are dead (above it on "
                   "no probing clip) and how many always on (above it on every one)")


def _links(df: pd.DataFrame, model: str, layer: str, neuron: str) -> pd.Series:
    return "neuron?model=" + df[model].astype(str) + "&layer=" + df[layer].astype(str) + "&neuron=" + \
        df[neuron].astype(str)


def related_section(rel: pd.DataFrame | None, n_models: int) -> None:
    """The neuron's most correlated neurons (``related.related``; None: the database predates the stage): same
    layer, other layers, other models, with their explanations."""
    st.subheader("Related neurons (correlation of the activations over the probing set)")
    if rel is None:
        st.info("This database was built before the related_neurons stage: rebuild it to see related neurons "
                "(only that stage is computed).")
        return
    tabs = st.tabs([related.RELATION_TITLES[r] for r in related.RELATIONS])
    for tab, relation in zip(tabs, related.RELATIONS):
        rows = rel[rel["relation"] == relation]
        with tab:
            if rows.empty:
                why = {"other_model": "this database holds one model: dissect another on the same probing set to "
                                      "compare", "other_layer": "this model has one dissected layer"}.get(
                    relation, "no other neuron of this layer varies over the probing set")
                st.info(f"No related neuron here: {why}." if n_models == 1 or relation != "other_model"
                        else "No related neuron in the other models.")
                continue
            shown = rows.assign(link=_links(rows, "other_model", "other_layer", "other_neuron"))
            st.dataframe(shown[["rank", "link", "other_model", "other_layer", "correlation", "top_concept",
                                "calibrated_summary", "summary_auc"]], hide_index=True, width="stretch",
                         column_config={"link": st.column_config.LinkColumn("neuron", display_text=r"neuron=(\d+)$"),
                                        "other_model": "model", "other_layer": "layer",
                                        "correlation": st.column_config.NumberColumn("r", format="%.3f"),
                                        "top_concept": "DB concept", "calibrated_summary": "S_h^c",
                                        "summary_auc": AUC_COLUMN})


AUC_COLUMN = st.column_config.NumberColumn("S_h^c AUC", format="%.2f", help="the calibrated summary's embedding "
                                          "AUC on clips it was not written from (0.5 = chance; docs/scores.md)")
SCALES = [0.0, 0.5, 2.0, 5.0]  # what the neuron's output is multiplied by (0 = zeroed, as pruning does)


@st.cache_data(show_spinner="Running the held-out clips…", max_entries=256)
def _effect(db_path: str, db_mtime: float, model: str, layer: str, neuron: int, scale: float, _target
            ) -> effect.NeuronEffect:
    return effect.neuron_effect(_target, layer, neuron, scale)


def effect_section(db, cfg, model: str, layer: str, neuron: int) -> None:
    """Zero or scale this neuron in the forward pass: every class's logit change and the held-out accuracy."""
    st.subheader("Effect on the output")
    prunable = per_version(aggregates.prunable_models, db)
    if model not in prunable:
        if not prunable:
            st.info(md(f"Unavailable for {model}: {per_version(availability.no_output_measure, db)}."))
            return
        st.info(f"Unavailable for {md(model)}: its classes are not the probing set's labels (or none of its "
                "held-out clips has one), so there is no held-out label to measure a logit change against. "
                f"Models with it: {md(', '.join(prunable))}.")
        return
    _effect_view(cfg, model, layer, neuron)


@st.fragment
def _effect_view(cfg, model: str, layer: str, neuron: int) -> None:
    """The toggle, the factor and the effect: a fragment, so switching it on or moving the factor reruns only this
    (not the whole Neuron page with its players and images)."""
    if not st.toggle("measure it on the held-out clips (runs the model)", key="nr_effect_on"):
        st.caption("Zero this neuron (or scale it) in the forward pass and see what every class's logit does.")
        return
    scale = st.select_slider("multiply the neuron's output by", SCALES, value=0.0, key="nr_effect_scale",
                             format_func=lambda f: "0 (zeroed)" if f == 0 else f"{f:g}×")
    try:  # a store of its own: the page's is closed when the fragment reruns alone
        with ResultsStore(results_path(), read_only=True) as db:
            target = pruning_target(db, cfg, model)
    except (live.LiveError, ImportError, OSError, ValueError, StoreError) as exc:
        st.warning(f"Unavailable for {md(model)}: {md(exc)}")
        return
    path = results_path()
    eff = _effect(str(path), path.stat().st_mtime, model, layer, int(neuron), float(scale), target)
    c1, c2, c3 = st.columns(3)
    c1.metric("held-out accuracy", f"{eff.accuracy_after:.1%}", change_text(eff.accuracy_before, eff.accuracy_after),
              help=f"before {eff.accuracy_before:.1%}, after {eff.accuracy_after:.1%} ({eff.n_clips} held-out clips)")
    c2.metric("predictions changed", f"{eff.n_flipped} of {eff.n_clips}")
    top = eff.per_class.loc[eff.per_class["mean_change"].abs().idxmax()]
    c3.metric("largest mean change", f"{top['mean_change']:+.3f}", help=f"class {top['class_name']}")
    if eff.why_unchanged:
        st.info(md(eff.why_unchanged))
    what = "zeroed" if scale == 0 else f"scaled {scale:g}×"
    bars = charts.effect_bars(eff.per_class, f"change of each class's logit, neuron {neuron} {what}")
    st.vega_lite_chart(spec=bars, width="stretch", key="nr_effect_chart")


def quantile_clips(values: np.ndarray, model: str, layer: str, neuron: int) -> pd.DataFrame:
    """The clips shown from every activation quantile (seeded by the neuron, so a revisit shows the same)."""
    seed = int.from_bytes(f"{model}/{layer}/{neuron}".encode()[-8:].rjust(8, b"\0"), "little")
    return distribution.quantile_clips(values, n_bins=5, per_bin=2, seed=seed)


def _caption_text(caption: object) -> str:
    return md(caption) if isinstance(caption, str) else "(no caption)"


def clip_card(heading: str, caption: object, clip, image: tuple[bytes, str] | None = None) -> None:
    """One clip in a bordered card: ``heading`` (markdown) with the clip's caption as a small grey line under it, in
    one markdown element (a fresh tab draws the page's cards faster than with two), then its player (``clip``:
    ClipMedia, or why the audio is unavailable) and ``image`` ((JPEG, its caption), if any)."""
    with st.container(border=True):
        st.markdown(heading + "  \n:gray[:small[" + _caption_text(caption) + "]]")
        if isinstance(clip, str):
            st.warning(clip)
            return
        st.audio(clip.audio, format=clip.mime)
        if image is not None:
            st.image(image[0], width="stretch", caption=image[1])


def quantile_section(quantiles: pd.DataFrame, media: dict) -> None:
    """The clips sampled from every activation quantile (``read_rest``; ``media``: its clips): one table, and their
    players on demand."""
    st.subheader("Clips from every activation quantile")
    # the range unbroken in its cell ("80‑100 %": a non-breaking hyphen and space)
    rows = [f"| {r.pct_from:.0f}\u2011{r.pct_to:.0f}\u00a0% | {r.clip_id} | {md(r.label)} | {r.activation:.3f} | "
            f"{_caption_text(r.caption)} |" for r in quantiles.itertuples()]
    st.markdown("\n".join(["| quantile | clip | label | activation | caption |", "|---|---|---|---|---|", *rows]))
    _quantile_players(quantiles, media)


@st.fragment
def _quantile_players(quantiles: pd.DataFrame, media: dict) -> None:
    """The quantile clips' players, when switched on (a fragment: switching reruns only this; off by default, so a
    fresh tab loads the 10 top-K / bottom-K players only)."""
    if not st.toggle("play the quantile clips here", key="nr_quantile_play"):
        return
    for r in quantiles.itertuples():
        clip_card(f"**quantile {r.pct_from:.0f}–{r.pct_to:.0f} %** clip {r.clip_id} · label **{md(r.label)}** · "
                  f"activation {r.activation:.3f}", r.caption, media[int(r.clip_id)])


def download_section(model: str, layer: str, neuron: int) -> None:
    """The neuron's export (``python -m and_engine export --layer --neuron``) as a download."""
    st.subheader("Download")
    download("Download this neuron", export.stem(model, layer, neuron),
             lambda db: export.export_tables(db, model, layer, neuron), key="nr_download")
    st.caption(md(f"the same as: python -m and_engine export --model {model} --layer {layer} --neuron {neuron}"))
