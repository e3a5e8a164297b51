"""Query by sound: upload or record a clip, run it through a dissected model on the CPU, and see per layer the
neurons it drives furthest beyond their usual range on the probing set (percentile), with their explanations and
this clip's time x frequency map of each; a click opens the neuron."""

import hashlib

import streamlit as st

from and_engine.audio import AUDIO_EXTENSIONS, AudioIssue
from and_engine.explorer import aggregates, by_sound, charts, live, media, queries, related
from pages._shared import download, main_content_sent, md, neuron_link, per_version, results_path, run_config, store

st.title("Query by sound")
db = store()
cfg = run_config(db)
models = per_version(queries.models, db)
if models.empty:
    st.warning("This results database holds no target model yet.")
    st.stop()
path = results_path()
db_key = (str(path), path.stat().st_mtime)  # caches are dropped when the database is rebuilt


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(db_path: str, db_mtime: float, model: str):
    return live.load_model(cfg, model, queries.clips(db).reset_index(), aggregates.sae_checkpoints(db, model))


@st.cache_resource(show_spinner=False, max_entries=4)
def _reference(db_path: str, db_mtime: float, model: str) -> dict:
    """{layer: (n_clips, n_neurons)} the probing set's activations of the model's dissected layers (read once)."""
    return {la: db.read_activations(model, la) for la in queries.layers(db, model)["layer"]}  # SAE layers too


@st.cache_data(show_spinner="Running the clip through the model…", max_entries=16)
def _query(db_path: str, db_mtime: float, model: str, digest: str, name: str, per_layer: int, _data: bytes):
    """The ranked neurons with their explanations, the clip's waveform, display spectrogram and maps."""
    target = _model(db_path, db_mtime, model)
    wave = by_sound.decode_upload(_data, name, target.sample_rate, cfg.probing_set.clip_seconds,
                                  cfg.probing_set.min_seconds, cfg.probing_set.silence_dbfs)
    have = {s.name: s for s in target.layers()}  # an SAE layer whose checkpoint is gone is not attached
    specs = [have[la] for la in queries.layers(db, model)["layer"] if la in have]
    acts, maps = by_sound.clip_activations(target, wave, specs, cfg.activations.pool, cfg.activations.precision)
    top = by_sound.top_neurons(acts, _reference(db_path, db_mtime, model), per_layer)
    top = top.merge(related.explanations(db, top.assign(model=model)), on=["layer", "neuron"])
    chosen = {(r.layer, r.neuron): maps[r.layer][r.neuron] for r in top.itertuples() if r.layer in maps}
    return wave, top, media.display_spectrogram(wave, target.sample_rate), chosen


c1, c2 = st.columns([3, 1])
model = c1.selectbox("model", models["model"].tolist(), key="qs_model")
per_layer = int(c2.number_input("neurons per layer", 1, 10, 3, key="qs_per_layer"))
up, rec = st.tabs(["Upload a file", "Record from the microphone"])
uploaded = up.file_uploader("audio file", type=[e.lstrip(".") for e in AUDIO_EXTENSIONS], key="qs_upload")
seconds = cfg.probing_set.clip_seconds
hint = st.empty()  # drawn before the recorder (whose code is heavier), so the page's main content shows first
if uploaded is None:
    hint.info(f"Upload a file ({', '.join(AUDIO_EXTENSIONS)}) or record one. It is decoded as the probing set's clips "
              f"are (mono, resampled to the model's rate, the first {seconds:g} s, padded if shorter) and runs "
              f"through {md(model)} on the CPU; nothing is kept on disk.")
main_content_sent("by_sound")
recorded = rec.audio_input("record a clip", key="qs_record")
clip = recorded if recorded is not None else uploaded
if clip is None:
    st.stop()
hint.empty()

data = clip.getvalue()
try:
    wave, top, spec, maps = _query(*db_key, model, hashlib.sha256(data).hexdigest(), clip.name, per_layer, data)
except AudioIssue as exc:
    st.error(f"This file cannot be used: {md(exc.reason)} ({md(exc.path)})")
    st.stop()
except (live.LiveError, ImportError, OSError, ValueError) as exc:
    st.warning(f"Querying {md(model)} is unavailable: {md(exc)}")
    st.stop()

sr = int(models.set_index("model").loc[model, "sample_rate"])
st.audio(wave, sample_rate=sr)
st.caption(f"What {md(model)} heard: {md(clip.name)}, {seconds:g} s at {sr} Hz. Percentile: where this clip's "
           f"activation falls among the {len(queries.clips(db))} probing clips' (100 = above all of them); ties at "
           "100 % are ordered by z, the distance above the probing set's mean in standard deviations.")
for layer, rows in top.groupby("layer", sort=False):
    st.subheader(layer)
    for r in rows.itertuples():
        with st.container(border=True):
            left, mid, right = st.columns([2, 3, 3])
            with left:
                neuron_link(model, layer, r.neuron, f"neuron {r.neuron}")
                st.markdown(f"percentile **{r.percentile:.1f}** · z {r.z:+.1f} · activation {r.activation:.3f}")
            mid.markdown(f"**{md(r.top_concept or '—')}** (DB concept)")
            mid.caption(md(r.calibrated_summary) if r.calibrated_summary else "(no calibrated summary)")
            if r.summary_auc == r.summary_auc:  # scored (not NaN)
                mid.caption(f"S_h^c embedding AUC {r.summary_auc:.2f} on other clips (0.5 = chance)")
            if (layer, r.neuron) in maps:
                right.image(charts.clip_image(spec, maps[(layer, r.neuron)]), width="stretch",
                            caption="this clip's spectrogram + the neuron's map")
            else:
                right.caption("this layer keeps no time × frequency map")

download("Download this result", f"query.{model}", lambda _db: {"neurons": top.assign(model=model, clip=clip.name)},
         key="qs_download")
