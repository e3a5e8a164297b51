"""The app's test database, written by the engine's own stage and analysis functions (no hand-made rows).

``build_fixture_db(path)`` runs every stage the pages read for one model ``tinynet`` (``_app_tiny_model``:
a conv layer with 4 x 10 maps, a linear layer, a classifier) over the real demo clips of six classes,
through ``run_step`` into a ``ResultsStore``, so every value obeys the schema's contract. Fakes
(``tests/fakes.py``) stand in where a model or a backend would be needed: the layer outputs are a fake
model's (activations tuned to one class per neuron, random maps), captions come from a captioner that knows
the labels, the text encoder is word vectors, the tagger a lexicon, TAB's audio-text model scores labels.
Summaries, ICL answers and the adjective filter come from the embedded ``rule`` LLM; Table 4 and Figure 4
prune the tiny random ``tinynet`` on the held-out clips. Every explanation is scored (embedding with the word
vectors, audio-text with the label model, detection by the rule LLM) and checked against the labels with the
benchmark's label-words table. conftest's ``app_db`` builds it once per session.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from _app_tiny_model import CLASSES, MODEL, SAMPLE_RATE, tiny_target_model
from fakes import LabelAudioText, LabelCaptioner, LexiconTagger, WordVectorEncoder

from and_engine.analyses import adjectives, clusters
from and_engine.analyses.acoustic_check import acoustic_check
from and_engine.analyses.feature_importance import feature_importance
from and_engine.analyses.lastlayer import lastlayer_accuracy
from and_engine.analyses.related import related_neurons
from and_engine.analyses.unlearning import candidate_layers, heldout_labels, run_table4
from and_engine.backends.llm import CachedLLM
from and_engine.backends.registry import make
from and_engine.config import (
    PROJECT_ROOT,
    AnalysesConfig,
    Config,
    ModelConfig,
    ModuleAConfig,
    ProbingSetConfig,
    RunConfig,
)
from and_engine.models.training import heldout_accuracy
from and_engine.pipeline.core import BuildContext, Progress, run_step
from and_engine.probing import ProbingSet
from and_engine.stages import ground_truth as gt
from and_engine.stages import module_a, module_b, module_c
from and_engine.stages.activations import activations_table, maps_table
from and_engine.stages.captions import compute_captions
from and_engine.stages.clip_media import clip_media_rows
from and_engine.stages.explanations import collect_explanations
from and_engine.stages.extremes import extremes_frame, topk_bottomk
from and_engine.stages.llm_scores import judge_scores
from and_engine.stages.scores import score_rows, separation, similarity_at_sets, summarise, text_vectors, unique_texts
from and_engine.stages.scoring_sets import draw_scoring_sets, layer_rng
from and_engine.stages.summaries import compute_summaries
from and_engine.store.results import ResultsStore
from and_engine.store.schema import POS_ADJECTIVE
from and_engine.text.labels import read_label_words
from and_engine.text.prompts import (
    ADJECTIVE_TEMPLATE_ID,
    DETECTION_TEMPLATE_ID,
    ICL_TEMPLATE_ID,
    SUMMARY_TEMPLATE_ID,
)

__all__ = ["CLASSES", "DEMO_ROOT", "MODEL", "SAE_LAYER", "build_fixture_db", "fixture_config"]

DEMO_ROOT = PROJECT_ROOT / "data" / "demo"
Held = tuple[np.ndarray, np.ndarray]  # the held-out clips' waveforms (n, samples) and class indices (n,)
ADJ = {"chirping_birds": ("high-pitched", "bright"), "church_bells": ("resonant", "loud"),
       "cow": ("low", "loud"), "crackling_fire": ("crackling", "noisy"), "door": ("sharp", "short"),
       "engine": ("rumbling", "continuous")}
# the lexicon tagger's words beyond its defaults: the captions' adjectives, the rule LLM's wording
TAGS = {**dict.fromkeys({w for pair in ADJ.values() for w in pair}, "JJ"),
        **dict.fromkeys(("forceful", "brief", "grainy", "static-like", "steady", "deep", "recognisable", "present",
                         "momentary", "single", "high", "shrill", "squeaky", "unbroken"), "JJ"),
        **dict.fromkeys(("contain", "feature", "have", "pervades", "pierces"), "VBZ"),
        **dict.fromkeys(("blaring", "hissing", "droning"), "VBG"),
        **dict.fromkeys(("prominently", "instantly", "almost"), "RB"),
        "can": "MD", "be": "VB", "heard": "VBN", "recorded": "VBN", "of": "IN", "at": "IN", "over": "IN"}


def fixture_config(path: Path) -> Config:
    """The fixture build's configuration (recorded in ``runs`` like a build's: the app reads it)."""
    return Config(run=RunConfig(name="fixture", database=str(path), ratings_database=str(path.parent / "r.duckdb")),
                  probing_set=ProbingSetConfig(kind="demo", path=str(DEMO_ROOT), heldout_fold=1),
                  models=(ModelConfig(name=MODEL, kind="tiny-test"),),
                  module_a=ModuleAConfig(similarities=("cos", "cos3", "wpmi")),
                  analyses=AnalysesConfig(n_clusters=5, elbow_max_k=8, prune_percents=(10.0, 20.0), seeds=(0, 1)))


def _clips() -> pd.DataFrame:
    """The demo clips of ``CLASSES`` as the probing set lists them (clip_id = order of the relative path)."""
    meta = pd.read_csv(DEMO_ROOT / "meta.csv")
    meta = meta[meta["label"].isin(CLASSES)].sort_values("filename").reset_index(drop=True)
    return pd.DataFrame({"clip_id": np.arange(len(meta), dtype=np.int32), "rel_path": meta["filename"],
                         "label": meta["label"], "fold": meta["fold"].astype(np.int32), "duration_s": 5.0,
                         "orig_sample_rate": 44100, "orig_channels": 1, "source": meta["source_package"],
                         "license": meta["license"]})


def _caption(label: str) -> str:
    a, b = ADJ[label]
    return f"The sound of a {label.replace('_', ' ')} is heard. It is {a} and {b}."


def _fake_outputs(clips: pd.DataFrame, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """A fake model's outputs per layer: activations (n_clips, n), neuron j tuned to class j % 6, and for a
    layer with a patch grid its (n, K, F, T) maps over each neuron's top-K clips (one hot cell each)."""
    rng = np.random.default_rng(seed)
    lab = clips["label"].map(CLASSES.index).to_numpy()
    out = {}
    for spec in tiny_target_model().layers():
        u = rng.normal(size=(len(clips), spec.n_neurons)).astype(np.float32)
        u += 3.0 * (lab[:, None] == (np.arange(spec.n_neurons) % len(CLASSES))[None, :])
        maps = None
        if spec.map_freq:
            maps = rng.random((spec.n_neurons, 5, spec.map_freq, spec.map_time)).astype(np.float32) * 0.3
            for j, r in np.ndindex(spec.n_neurons, 5):
                maps[j, r, rng.integers(spec.map_freq), rng.integers(spec.map_time)] += 2.0
        out[spec.name] = (u, maps)
    return out


def _model_steps(ctx: BuildContext, clips_fp: str, outputs: dict, held: Held) -> dict[str, str]:
    """models + layers, then activations, extremes and activation maps per layer -> fingerprints."""
    target, k = tiny_target_model(), ctx.config.activations.top_k
    models = pd.DataFrame([{"model": MODEL, "kind": target.kind, "sample_rate": SAMPLE_RATE, "class_names": CLASSES,
                            "heldout_fold": ctx.config.probing_set.heldout_fold,
                            "heldout_accuracy": heldout_accuracy(target, *held), "n_heldout": len(held[1]),
                            "checkpoint": "", "description": target.description}])
    layers = pd.DataFrame([{"model": MODEL, "layer": s.name, "module_path": s.module_path, "kind": s.kind,
                            "block": s.block, "layer_index": i, "n_neurons": s.n_neurons, "map_freq": s.map_freq,
                            "map_time": s.map_time} for i, s in enumerate(target.layers())])
    fps = {"model": run_step(ctx, "model", {"model": MODEL}, {"kind": target.kind}, [clips_fp],
                             lambda: {"models": models, "layers": layers})}
    for name, (u, maps) in outputs.items():
        scope = {"model": MODEL, "layer": name}
        a = run_step(ctx, "activations", scope, {"pool": "mean"}, [fps["model"]],
                     lambda u=u, name=name: {"activations": activations_table(MODEL, name, u)})
        fps[f"extremes:{name}"] = run_step(ctx, "extremes", scope, {"top_k": k}, [a],
                                           lambda u=u, name=name: {"extremes": extremes_frame(MODEL, name, u, k)})
        if maps is not None:
            run_step(ctx, "activation_maps", scope, {"top_k": k}, [fps[f"extremes:{name}"]],
                     lambda u=u, m=maps, n=name: {"activation_maps": maps_table(MODEL, n, m, topk_bottomk(u, k)[0])})
    return fps


SAE_LAYER = "block1.conv.sae"


def _sae_steps(ctx: BuildContext, fps: dict[str, str], waves: np.ndarray, folder: Path) -> dict:
    """A real TopK SAE (16 latents) trained on ``tinynet``'s block1.conv vectors, saved beside the database, and
    its layer's activations (the SAE's pooled codes), extremes and (random) maps -> {SAE layer: (activations,
    maps)} (``fps`` gains its extremes' fingerprint)."""
    from and_engine.models.sae import attach_sae, load_or_train_sae
    from and_engine.stages.activations import record_activations
    from and_engine.stages.sae import fit_sae, layer_vectors, sae_tables

    target, k = tiny_target_model(), ctx.config.activations.top_k
    source = target.layer("block1.conv")
    vectors, _ = layer_vectors(target, waves, source, range(len(waves)), 4000, 0)
    path = folder / "sae" / "tinynet-block1.conv"
    sae, meta = load_or_train_sae(path, lambda: fit_sae(vectors, vectors[:0], 16, 2, 3, 0.0, 256, 0, source.name))
    spec = attach_sae(target, source.name, sae)
    scope = {"model": MODEL, "layer": spec.name}
    up = run_step(ctx, "sae", scope, {"expansion": 2}, [fps["model"]], lambda: sae_tables(
        MODEL, source, spec, 0, meta, str(path)))
    u = record_activations(target, waves, [spec], pool="mean")[spec.name]
    rng = np.random.default_rng(1)  # tinynet's real conv output is 16 x 50, not its declared 4 x 10 grid: fake maps
    maps = rng.random((spec.n_neurons, k, spec.map_freq, spec.map_time)).astype(np.float32)
    a = run_step(ctx, "activations", scope, {"pool": "mean"}, [fps["model"], up],
                 lambda: {"activations": activations_table(MODEL, spec.name, u)})
    fps[f"extremes:{spec.name}"] = run_step(ctx, "extremes", scope, {"top_k": k}, [a], lambda: {
        "extremes": extremes_frame(MODEL, spec.name, u, k)})
    run_step(ctx, "activation_maps", scope, {"top_k": k}, [fps[f"extremes:{spec.name}"]], lambda: {
        "activation_maps": maps_table(MODEL, spec.name, maps, topk_bottomk(u, k)[0])})
    return {spec.name: (u, maps)}


def _dissect_layer(ctx: BuildContext, name: str, u: np.ndarray, up: list[str], llms: dict, objects: dict) -> str:
    """Summaries, Module A (DB, TAB, ICL) and Module B of one layer -> Module B's fingerprint."""
    store, cfg, scope = ctx.store, ctx.config, {"model": MODEL, "layer": name}
    caps = store.read("captions", ["clip_id", "caption"], order_by=["clip_id"])
    ext = store.read("extremes", model=MODEL, layer=name, order_by=["neuron"])
    summ = llms[SUMMARY_TEMPLATE_ID]
    s_fp = run_step(ctx, "summaries", scope, {"groups": [{"llm": summ.describe()}]}, up, lambda: {
        "summaries": compute_summaries(ext, caps, [(ext["neuron"].to_numpy(), summ)])})
    common = {"model": MODEL, "layer": name, "top_n": cfg.module_a.top_n}
    db = module_a.closed_concepts(u, objects["db"], CLASSES, method="DB", similarities=cfg.module_a.similarities,
                                  **common)
    tab = module_a.closed_concepts(u, objects["tab"], CLASSES, method="TAB", similarities=("cos",), **common)
    run_step(ctx, "module_a", scope, {"encoder": objects["encoder"].describe()}, up,
             lambda: {"closed_concepts": pd.concat([db, tab])})
    top = store.read("summaries", ["neuron", "summary"], model=MODEL, layer=name, side="top", order_by=["neuron"])
    run_step(ctx, "module_a_icl", scope, {"llm": llms[ICL_TEMPLATE_ID].describe()}, [s_fp], lambda: {
        "closed_concepts": module_a.icl_closed_concepts(top.set_axis(["neuron", "description"], axis=1), CLASSES,
                                                        llms[ICL_TEMPLATE_ID], objects["encoder"], model=MODEL,
                                                        layer=name, top_n=cfg.module_a.top_n)[0]})
    summaries = store.read("summaries", ["neuron", "side", "summary"], model=MODEL, layer=name)
    points = module_b.calibration_points(summaries, objects["encoder"], model=MODEL, layer=name)
    return run_step(ctx, "module_b", scope, {"threshold": cfg.module_b.threshold}, [s_fp], lambda: {
        "calibration_points": points, "calibrated_summaries": module_b.calibrated_summaries(
            points, range(u.shape[1]), cfg.module_b.threshold, model=MODEL, layer=name)})


def _module_c(ctx: BuildContext, b_fps: dict[str, str], llm, tagger) -> None:
    """The adjective checks over every layer's adjectives, then C_open and POS counts per layer."""
    basic = ctx.config.analyses.basic_adjectives
    words = {name: module_c.tag_words(ctx.store.read("calibrated_summaries", ["neuron", "calibrated_summary"],
                                                     model=MODEL, layer=name, order_by=["neuron"]), tagger, basic)
             for name in b_fps}
    adjs = sorted({w for found, _ in words.values() for w in found.loc[found["pos"] == POS_ADJECTIVE, "word"]})
    checks_fp = run_step(ctx, "adjective_checks", {}, {"llm": llm.describe()}, list(b_fps.values()), lambda: {
        "adjective_checks": module_c.check_adjectives(adjs, llm)})
    checks = ctx.store.read("adjective_checks", ["adjective", "accepted"])
    for name, (found, counts) in words.items():
        def tables(f=found, c=counts, n=name):
            return {"open_concepts": module_c.open_concepts(f, checks, model=MODEL, layer=n),
                    "pos_counts": module_c.pos_counts(c, f, checks, model=MODEL, layer=n)}
        run_step(ctx, "module_c", {"model": MODEL, "layer": name}, {"tagger": tagger.describe()},
                 [b_fps[name], checks_fp], tables)


def _analyses(ctx: BuildContext, n_clips: int, held: Held, encoder, up: list[str]) -> None:
    """Every analysis the pages show, with the analyses' own functions, from the rows written above."""
    cfg, read, scope = ctx.config.analyses, ctx.store.read, {"model": MODEL}
    sents = clusters.caption_sentences(read("captions", order_by=["clip_id"]))
    labels, elbow = clusters.kmeans_clusters(encoder.encode(sents["sentence"].tolist()), cfg.n_clusters,
                                             ctx.config.run.seed, cfg.elbow_max_k)
    sents = sents.assign(cluster=labels)
    run_step(ctx, "clusters", {}, {"n_clusters": cfg.n_clusters}, up, lambda: {
        "caption_sentences": sents, "cluster_elbow": elbow, "cluster_words": clusters.cluster_words(sents)})
    membership = clusters.clip_cluster_matrix(sents, n_clips)
    layers, opened, counts = (read(t, model=MODEL) for t in ("layers", "open_concepts", "pos_counts"))
    top_k = read("extremes", ["layer", "neuron", "topk_clip_ids"], model=MODEL)
    closed = read("closed_concepts", model=MODEL)
    target, sizes, sims = tiny_target_model(), candidate_layers(layers), {"DB": "cos3", "TAB": "cos"}
    summary, per_class = run_table4(target, *held, CLASSES, closed, opened, sizes, sims, MODEL,
                                    top_n=cfg.closed_top_n_for_pruning, seed=ctx.config.run.seed)
    run_step(ctx, "analyses", scope, {"taus": cfg.taus, "similarities": sims}, up, lambda: {
        "adjective_stats": adjectives.adjective_stats(opened, counts, layers, MODEL),
        "top_adjectives": adjectives.top_adjectives(opened, MODEL, cfg.top_adjectives_n),
        "interpretability": clusters.interpretability(top_k, layers, membership, cfg.taus, MODEL),
        "lastlayer_accuracy": lastlayer_accuracy(closed[closed["layer"] == "classifier"], CLASSES, CLASSES, encoder,
                                                 MODEL),
        "pruning_summary": summary, "pruning_per_class": per_class,
        "feature_importance": feature_importance(target, *held, counts, opened, sizes, MODEL, cfg.prune_percents,
                                                 cfg.seeds, cfg.basic_adjectives),
        "acoustic_check": acoustic_check(opened, counts, top_k, read("acoustic_features"), MODEL,
                                         cfg.acoustic_adjectives)})


def _scores(ctx: BuildContext, outputs: dict, up: list[str], objects: dict, judge) -> None:
    """Scores (embedding: word vectors on captions; audio-text: the label model; detection: the rule LLM) and
    ground truth of every layer, with the stages' own functions."""
    read, table = ctx.store.read, read_label_words(PROJECT_ROOT / "benchmarks" / "label_words.csv")
    clips, caps = read("clips", ["clip_id", "label"]), read("captions", ["clip_id", "caption"], order_by=["clip_id"])
    ct_fp = run_step(ctx, "caption_truth", {}, {"label_words": sorted(table.items())}, up, lambda: {
        "caption_truth": gt.caption_truth(clips, caps, table)})
    encoder, audio = objects["encoder"], objects["audio"]
    cap_emb, clip_emb = encoder.encode(caps["caption"].tolist()), audio.audio_embeddings(np.zeros((len(clips), 1)))
    for name, (u, _maps) in outputs.items():
        scope, rng = {"model": MODEL, "layer": name}, layer_rng(0, MODEL, name)
        sets = draw_scoring_sets(u, ctx.config.activations.top_k, rng=rng)
        expl = collect_explanations(
            read("summaries", ["neuron", "summary", "status"], model=MODEL, layer=name, side="top"),
            read("calibrated_summaries", ["neuron", "calibrated_summary"], model=MODEL, layer=name),
            read("closed_concepts", model=MODEL, layer=name), read("open_concepts", model=MODEL, layer=name),
            model=MODEL, layer=name, rng=rng)
        rows, (texts, idx) = expl["neuron"].to_numpy(), unique_texts(expl["explanation"])
        frames = []
        for scorer, clips_e, embed in (("embedding", cap_emb, encoder.encode), ("audio-text", clip_emb,
                                                                               audio.text_embeddings)):
            a, r = separation(similarity_at_sets(text_vectors(texts, embed), idx, rows, clips_e, sets), rows, sets, u)
            frames.append(score_rows(expl, scorer, a, r, None, sets.valid[rows].sum(axis=1)))
        few = expl[expl["neuron"] < 4]
        frames.append(judge_scores("detection", few, sets, caps["caption"].tolist(), u, judge, 10, rng))
        scores = pd.concat(frames, ignore_index=True)
        tables = {"explanations": expl, "scoring_sets": sets.frame(MODEL, name), "explanation_scores": scores,
                  "score_summary": summarise(scores)}
        s_fp = run_step(ctx, "scores", scope, {"scorers": ["embedding", "audio-text", "detection"]}, up,
                        lambda t=tables: t)
        ext = read("extremes", ["neuron", "topk_clip_ids"], model=MODEL, layer=name, order_by=["neuron"])
        truth = gt.neuron_truth(ext, clips, caps, table, model=MODEL, layer=name)
        named = gt.explanation_truth(expl, truth, table)
        tables = {"neuron_truth": truth, "explanation_truth": named, "truth_rates": gt.truth_rates(
            truth, named, ext, read("caption_truth"), ctx.config.activations.top_k, model=MODEL, layer=name)}
        run_step(ctx, "ground_truth", scope, {"label_words": sorted(table.items())}, [ct_fp, s_fp], lambda t=tables: t)


def build_fixture_db(path: Path) -> Path:
    """Write the fixture results database at ``path`` (a new file) -> ``path``."""
    path = Path(path)
    cfg = fixture_config(path)
    clips = _clips()
    probing = ProbingSet(DEMO_ROOT, clips, pd.DataFrame([{"rel_path": "audio/bad.ogg", "reason": "silent"}]))
    waves = probing.load_waveforms(SAMPLE_RATE, cfg.probing_set.clip_seconds)
    ids, labels = heldout_labels(clips, CLASSES, cfg.probing_set.heldout_fold)
    held = (waves[ids], labels)
    outputs, encoder = _fake_outputs(clips), WordVectorEncoder()
    with ResultsStore(path) as store:
        ctx = BuildContext(cfg, store, "fixture-run", Progress(quiet=True))
        store.record_run("fixture-run", "fixture", json.dumps(cfg.to_dict(), default=str), cfg.config_hash(),
                         "fixture", "running")
        rule = make("llm", cfg.summaries.llm.backend, cfg.summaries.llm)
        llms = {t: CachedLLM(rule, store.cache_get, store.cache_put, template=t)
                for t in (SUMMARY_TEMPLATE_ID, ICL_TEMPLATE_ID, ADJECTIVE_TEMPLATE_ID, DETECTION_TEMPLATE_ID)}
        clips_fp = run_step(ctx, "clips", {}, {"kind": "demo"}, [], lambda: {"clips": clips,
                                                                           "clip_issues": probing.issues})
        captioner = LabelCaptioner(dict(zip(clips["clip_id"], clips["label"].map(_caption))))
        caps_fp = run_step(ctx, "captions", {}, {"captioner": captioner.describe()}, [clips_fp],
                           lambda: compute_captions(waves, SAMPLE_RATE, captioner, clips["clip_id"].to_numpy()))
        captions = store.read("captions", ["caption"], order_by=["clip_id"])["caption"].tolist()
        audio = LabelAudioText(clips["label"])
        objects = {"encoder": encoder, "db": module_a.db_concept_matrix(captions, CLASSES, encoder),
                   "tab": audio.similarity(waves, CLASSES), "audio": audio}
        fps = _model_steps(ctx, clips_fp, outputs, held)
        run_step(ctx, "clip_media", {}, {"sample_rates": [SAMPLE_RATE]}, [clips_fp, fps["model"]], lambda: {
            "clip_media": clip_media_rows(waves, clips["clip_id"].to_numpy(), SAMPLE_RATE)})
        outputs = {**outputs, **_sae_steps(ctx, fps, waves, path.parent)}
        b_fps = {name: _dissect_layer(ctx, name, u, [caps_fp, fps[f"extremes:{name}"]], llms, objects)
                 for name, (u, _maps) in outputs.items()}
        _module_c(ctx, b_fps, llms[ADJECTIVE_TEMPLATE_ID], LexiconTagger(TAGS))
        _scores(ctx, outputs, [caps_fp, *b_fps.values()], objects, llms[DETECTION_TEMPLATE_ID])
        _analyses(ctx, len(clips), held, encoder, [caps_fp, *b_fps.values()])
        run_step(ctx, "related_neurons", {}, {"top_n": cfg.analyses.related_top_n}, [fps["model"]], lambda: dict(zip(
            ("related_neurons", "neuron_partners"),
            related_neurons({(MODEL, n): u for n, (u, _m) in outputs.items()}, cfg.analyses.related_top_n))))
        store.record_run("fixture-run", "fixture", "", "", "fixture", "done", finished=True)
    return path
