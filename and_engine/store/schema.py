"""The results database schema: one table per pipeline output (SPEC section 2), and the contract's values.

Every result table has a ``step_id`` column pointing to ``steps`` (provenance: stage, scope,
parameters with backend and model, fingerprint, code version). ``TABLES`` maps table name -> ordered
columns; the store only ever interpolates identifiers taken from this mapping. ``VALUES`` lists the
allowed values of the enumerated columns and ``RANKED`` the rank columns (ranks start at ``FIRST_RANK``);
``ResultsStore.commit_step`` refuses rows with other values, so the engine writes and the app reads
exactly these spellings.
"""

from __future__ import annotations

# ---------- the values of enumerated columns ----------
POS_ADJECTIVE, POS_NOUN = "ADJ", "NOUN"  # open_concepts.pos
# Penn Treebank tag -> open_concepts.pos: the one definition of "is an adjective / a noun" (VBN counts as an
# adjective, as in the paper's code); any other tag is neither.
PENN_POS = {**dict.fromkeys(("JJ", "JJR", "JJS", "VBN"), POS_ADJECTIVE),
            **dict.fromkeys(("NN", "NNS", "NNP", "NNPS"), POS_NOUN)}
SIDES = ("top", "bottom")  # summaries.side: S_h from the top-K captions, S_l from the bottom-K
SIMILARITIES = ("cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi")  # Module A's similarity functions
ICL_SIMILARITY = "llm"  # the similarity of ICL rows: the LLM's answer, mapped to concepts by sentence cosine
CLOSED_METHODS = ("DB", "TAB", "ICL")  # closed_concepts.method, lastlayer_accuracy.method
PRUNING_METHODS = ("OCP", "DB", "TAB", "random")  # pruning_summary / pruning_per_class.method
SUMMARY_STATUSES = ("ok", "truncated", "empty", "garbage")  # summaries.status ("" summary unless ok / truncated)
# runs.status: "running" until the build ends (a killed build stays so), then "done", "failed" (an exception) or
# "interrupted" (Ctrl-C); readers take the last "done" run (RUN_DONE)
RUN_STATUSES = ("running", "done", "failed", "interrupted")
RUN_DONE = "done"
FIRST_RANK = 1  # every rank column starts at 1 (the best concept, the most-activating clip, ...)
# explanation sources that are scored (explanation_scores.source): S_h, S_h^c, each closed-set method's rank-1
# concept ("DB/<similarity>", "TAB/<similarity>", "ICL"), the C_open adjectives, and the chance control: the
# S_h^c of another neuron of the same layer
SOURCE_SUMMARY, SOURCE_CALIBRATED, SOURCE_ICL = "S_h", "S_h^c", "ICL"
SOURCE_ADJECTIVES, SOURCE_SHUFFLED = "adjectives", "shuffled"
EXPLANATION_SOURCES = (SOURCE_SUMMARY, SOURCE_CALIBRATED, *(f"{m}/{s}" for m in ("DB", "TAB") for s in SIMILARITIES),
                       SOURCE_ICL, SOURCE_ADJECTIVES, SOURCE_SHUFFLED)
EMBEDDING_SCORERS = ("embedding", "audio-text")  # no LLM: scores.scorers
LLM_SCORERS = ("detection", "simulation")  # an LLM judges captions: scores.llm_scorers
SCORE_METRICS = ("auc", "pearson_r", "balanced_accuracy")  # the metric columns of explanation_scores
TRUTH_MEASURES = ("captions_name_label", "names_majority", "names_majority_where_captions_do")  # truth_rates


def closed_source(method: str, similarity: str) -> str:
    """A closed-set method's rank-1 concept as an explanation source: ``DB/cos``, ``TAB/wpmi``, ``ICL``."""
    return SOURCE_ICL if method == "ICL" else f"{method}/{similarity}"


# related_neurons.relation: the most correlated neurons of the same layer, the model's other layers, other models
RELATIONS = ("same_layer", "other_layer", "other_model")

VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "summaries": {"side": SIDES, "status": SUMMARY_STATUSES},
    "closed_concepts": {"method": CLOSED_METHODS, "similarity": (*SIMILARITIES, ICL_SIMILARITY)},
    "open_concepts": {"pos": (POS_ADJECTIVE, POS_NOUN)},
    "lastlayer_accuracy": {"method": CLOSED_METHODS, "similarity": (*SIMILARITIES, ICL_SIMILARITY)},
    "pruning_summary": {"method": PRUNING_METHODS},
    "pruning_per_class": {"method": PRUNING_METHODS},
    "runs": {"status": RUN_STATUSES},
    "explanations": {"source": EXPLANATION_SOURCES},
    "explanation_scores": {"source": EXPLANATION_SOURCES, "scorer": (*EMBEDDING_SCORERS, *LLM_SCORERS)},
    "score_summary": {"source": EXPLANATION_SOURCES, "scorer": (*EMBEDDING_SCORERS, *LLM_SCORERS),
                      "metric": SCORE_METRICS},
    "explanation_truth": {"source": EXPLANATION_SOURCES},
    "truth_rates": {"measure": TRUTH_MEASURES, "source": ("", *EXPLANATION_SOURCES)},
    "related_neurons": {"relation": RELATIONS},
}
RANKED = {"closed_concepts": "rank", "activation_maps": "rank", "top_adjectives": "rank", "related_neurons": "rank"}

RAW_BLOB = "BLOB USING COMPRESSION uncompressed"  # blobs read a few rows at a time (see clip_media)
# name -> [(column, duckdb type)]; "step_id" is added to every table except the bookkeeping ones.
RESULT_TABLES: dict[str, list[tuple[str, str]]] = {
    # 1. clips
    "clips": [
        ("clip_id", "INTEGER"), ("rel_path", "VARCHAR"), ("label", "VARCHAR"), ("fold", "INTEGER"),
        ("duration_s", "DOUBLE"), ("orig_sample_rate", "INTEGER"), ("orig_channels", "INTEGER"),
        ("source", "VARCHAR"), ("license", "VARCHAR"),
    ],
    "clip_issues": [("rel_path", "VARCHAR"), ("reason", "VARCHAR")],
    # 2. captions (+ the measured acoustic descriptors the features captioner used)
    "captions": [("clip_id", "INTEGER"), ("caption", "VARCHAR")],
    "acoustic_features": [
        ("clip_id", "INTEGER"), ("rms_db", "DOUBLE"), ("relative_loudness", "DOUBLE"),
        ("peak_amplitude", "DOUBLE"), ("mean_abs_amplitude", "DOUBLE"), ("median_frequency_hz", "DOUBLE"),
        ("spectral_centroid_hz", "DOUBLE"), ("pitch_hz", "DOUBLE"), ("spectral_flatness", "DOUBLE"),
        ("onset_rate_hz", "DOUBLE"), ("active_s", "DOUBLE"), ("dynamic_range_db", "DOUBLE"),
        ("tags", "VARCHAR"),
    ],
    # target models and their layers
    "models": [
        ("model", "VARCHAR"), ("kind", "VARCHAR"), ("sample_rate", "INTEGER"), ("class_names", "VARCHAR[]"),
        ("heldout_fold", "INTEGER"), ("heldout_accuracy", "DOUBLE"), ("n_heldout", "INTEGER"),
        ("checkpoint", "VARCHAR"), ("description", "VARCHAR"),
    ],
    "layers": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("module_path", "VARCHAR"), ("kind", "VARCHAR"),
        ("block", "INTEGER"), ("layer_index", "INTEGER"), ("n_neurons", "INTEGER"),
        ("map_freq", "INTEGER"), ("map_time", "INTEGER"),
    ],
    # 3. activations: neuron-major, one row per neuron with its value on every clip (ordered by clip_id)
    "activations": [("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("values", "FLOAT[]")],
    # 4. extremes: top-K / bottom-K clip ids (ties broken by clip id) and their activations
    "extremes": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"),
        ("topk_clip_ids", "INTEGER[]"), ("topk_values", "FLOAT[]"),
        ("bottomk_clip_ids", "INTEGER[]"), ("bottomk_values", "FLOAT[]"),
    ],
    # per-position maps (freq x time, row-major) for each neuron's top-K clips
    "activation_maps": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("clip_id", "INTEGER"),
        ("rank", "INTEGER"), ("n_freq", "INTEGER"), ("n_time", "INTEGER"), ("map", "FLOAT[]"),
    ],
    # what the app shows per clip and model sample rate: the heard waveform as an audio file (MP3, else Ogg /
    # WAV; audio_mime says which) and its display log-mel spectrogram, (n_mels, n_frames) uint8, row-major.
    # Stored uncompressed: reading 10 clips out of DuckDB's ZSTD blob segments decompressed them all (1.7 s
    # for 2,000 clips, 0.15 s uncompressed; the MP3s are compressed already)
    "clip_media": [
        ("sample_rate", "INTEGER"), ("clip_id", "INTEGER"), ("audio", RAW_BLOB), ("audio_mime", "VARCHAR"),
        ("n_mels", "INTEGER"), ("n_frames", "INTEGER"), ("spectrogram", RAW_BLOB),
    ],
    # sparse autoencoders of models[].sae_layers (docs/sae.md): one row per SAE layer; fve / l0 / dead / dense on
    # the vectors of the clips outside the held-out fold (fve_typical: less the n_outliers left out of training),
    # fve_heldout on the held-out fold's
    "sae_metrics": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("source_layer", "VARCHAR"), ("n_inputs", "INTEGER"),
        ("n_latents", "INTEGER"), ("k", "INTEGER"), ("n_vectors", "INTEGER"), ("n_outliers", "INTEGER"),
        ("n_heldout_vectors", "INTEGER"), ("fve", "DOUBLE"), ("fve_typical", "DOUBLE"), ("fve_heldout", "DOUBLE"),
        ("l0", "DOUBLE"), ("n_dead", "INTEGER"), ("n_dense", "INTEGER"), ("dense_fraction", "DOUBLE"),
        ("checkpoint", "VARCHAR"),
    ],
    # 5. summaries S_h ("top") and S_l ("bottom"); backend/model per row for subset overrides
    "summaries": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("side", "VARCHAR"),
        ("summary", "VARCHAR"), ("cache_key", "VARCHAR"), ("backend", "VARCHAR"), ("llm_model", "VARCHAR"),
        ("status", "VARCHAR"),  # ok | truncated | empty | garbage (text/answers.py); "" summary if unusable
    ],
    # 6. Module A: top-5 closed-set concepts per neuron, method (DB/TAB/ICL) and similarity function
    "closed_concepts": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("method", "VARCHAR"),
        ("similarity", "VARCHAR"), ("rank", "INTEGER"), ("concept", "VARCHAR"), ("score", "DOUBLE"),
    ],
    # 7. Module B: every point of S_h with its best match in S_l and that cosine
    "calibration_points": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("point_index", "INTEGER"),
        ("point", "VARCHAR"), ("best_match", "VARCHAR"), ("best_cosine", "DOUBLE"),
    ],
    "calibrated_summaries": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("threshold", "DOUBLE"),
        ("calibrated_summary", "VARCHAR"), ("n_points", "INTEGER"), ("n_removed", "INTEGER"),
    ],
    # 8. Module C: open-set concepts and word counts of S_h^c
    "open_concepts": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("word", "VARCHAR"),
        ("pos", "VARCHAR"), ("count", "INTEGER"),
    ],
    "pos_counts": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("n_nouns", "INTEGER"),
        ("n_adjectives", "INTEGER"), ("n_verbs", "INTEGER"), ("n_prepositions", "INTEGER"),
        ("summary_words", "INTEGER"), ("n_basic_adjectives", "INTEGER"), ("n_open_adjectives", "INTEGER"),
    ],
    "adjective_checks": [("adjective", "VARCHAR"), ("accepted", "BOOLEAN"), ("answer", "VARCHAR")],
    # 9. analyses
    "lastlayer_accuracy": [
        ("model", "VARCHAR"), ("method", "VARCHAR"), ("similarity", "VARCHAR"), ("top1", "DOUBLE"),
        ("top5", "DOUBLE"), ("concept_cosine", "DOUBLE"), ("n_neurons", "INTEGER"),
    ],
    "pruning_summary": [
        ("model", "VARCHAR"), ("method", "VARCHAR"), ("mean_pruned", "DOUBLE"), ("delta_a", "DOUBLE"),
        ("delta_r", "DOUBLE"), ("delta_a_minus_r", "DOUBLE"), ("n_concepts", "INTEGER"),
    ],
    "pruning_per_class": [
        ("model", "VARCHAR"), ("method", "VARCHAR"), ("target_concept", "VARCHAR"), ("class_name", "VARCHAR"),
        ("delta_logit", "DOUBLE"), ("n_pruned", "INTEGER"),
    ],
    "feature_importance": [
        ("model", "VARCHAR"), ("criterion", "VARCHAR"), ("percent", "DOUBLE"), ("seed", "INTEGER"),
        ("accuracy", "DOUBLE"), ("n_pruned", "INTEGER"),
    ],
    "adjective_stats": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("block", "INTEGER"), ("mean_adjectives", "DOUBLE"),
        ("n_neurons", "INTEGER"),
    ],
    "top_adjectives": [("model", "VARCHAR"), ("adjective", "VARCHAR"), ("n_neurons", "INTEGER"), ("rank", "INTEGER")],
    "cluster_elbow": [("k", "INTEGER"), ("inertia", "DOUBLE")],
    "caption_sentences": [
        ("clip_id", "INTEGER"), ("sentence_index", "INTEGER"), ("sentence", "VARCHAR"), ("cluster", "INTEGER"),
    ],
    "cluster_words": [("cluster", "INTEGER"), ("word", "VARCHAR"), ("weight", "DOUBLE"), ("n_sentences", "INTEGER")],
    "interpretability": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("block", "INTEGER"), ("tau", "INTEGER"),
        ("pct_uninterpretable", "DOUBLE"), ("n_neurons", "INTEGER"),
    ],
    "acoustic_check": [
        ("model", "VARCHAR"), ("adjective", "VARCHAR"), ("has_adjective", "BOOLEAN"), ("n_neurons", "INTEGER"),
        ("mean_amplitude", "DOUBLE"), ("mean_median_frequency_hz", "DOUBLE"),
    ],
    # 10. scores of every explanation on clips it was not written from (stages/scores.py, docs/scores.md)
    "explanations": [  # the exact text scored per neuron and source
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("source", "VARCHAR"),
        ("explanation", "VARCHAR"),
    ],
    "scoring_sets": [  # each neuron's scoring clips (never its top-K / bottom-K) and which count as activating
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("clip_ids", "INTEGER[]"),
        ("activating", "BOOLEAN[]"),
    ],
    "explanation_scores": [  # NULL where a scorer does not define the metric or the neuron cannot be scored
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("source", "VARCHAR"),
        ("scorer", "VARCHAR"), ("auc", "DOUBLE"), ("pearson_r", "DOUBLE"), ("balanced_accuracy", "DOUBLE"),
        ("n_clips", "INTEGER"), ("n_malformed", "INTEGER"),
    ],
    "score_summary": [  # per layer, source, scorer and metric: the distribution over neurons (Overview, report)
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("source", "VARCHAR"), ("scorer", "VARCHAR"),
        ("metric", "VARCHAR"), ("n_neurons", "INTEGER"), ("mean", "DOUBLE"), ("q10", "DOUBLE"), ("q25", "DOUBLE"),
        ("median", "DOUBLE"), ("q75", "DOUBLE"), ("q90", "DOUBLE"),
    ],
    # 11. ground truth where the probing set has labels (stages/ground_truth.py)
    "caption_truth": [("clip_id", "INTEGER"), ("label", "VARCHAR"), ("names_label", "BOOLEAN")],
    "neuron_truth": [  # the majority label of the top-K clips, its share, and how many top-K captions name it
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("majority_label", "VARCHAR"),
        ("purity", "DOUBLE"), ("n_naming_captions", "INTEGER"),
    ],
    "explanation_truth": [
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("source", "VARCHAR"),
        ("names_majority", "BOOLEAN"),
    ],
    "truth_rates": [  # hits / total per layer, measure and explanation source ("" for captions)
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("measure", "VARCHAR"), ("source", "VARCHAR"),
        ("hits", "INTEGER"), ("total", "INTEGER"), ("rate", "DOUBLE"),
    ],
    # related neurons by the Pearson correlation of their activations over the probing set (analyses/related.py)
    "related_neurons": [  # each neuron's top-N per relation, rank 1 = highest correlation
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("relation", "VARCHAR"),
        ("rank", "INTEGER"), ("other_model", "VARCHAR"), ("other_layer", "VARCHAR"), ("other_neuron", "INTEGER"),
        ("correlation", "DOUBLE"),
    ],
    "neuron_partners": [  # each neuron's best partner in every layer of every other model (the compare page)
        ("model", "VARCHAR"), ("layer", "VARCHAR"), ("neuron", "INTEGER"), ("other_model", "VARCHAR"),
        ("other_layer", "VARCHAR"), ("other_neuron", "INTEGER"), ("correlation", "DOUBLE"),
    ],
}

# Bookkeeping tables (no step_id).
BOOK_TABLES: dict[str, list[tuple[str, str]]] = {
    "runs": [
        ("run_id", "VARCHAR"), ("config_name", "VARCHAR"), ("config_json", "VARCHAR"), ("config_hash", "VARCHAR"),
        ("code_version", "VARCHAR"), ("started_at", "TIMESTAMP"), ("finished_at", "TIMESTAMP"), ("status", "VARCHAR"),
    ],
    "steps": [
        ("step_id", "VARCHAR"), ("run_id", "VARCHAR"), ("stage", "VARCHAR"), ("scope", "VARCHAR"),
        ("params_json", "VARCHAR"), ("fingerprint", "VARCHAR"), ("code_version", "VARCHAR"),
        ("started_at", "TIMESTAMP"), ("finished_at", "TIMESTAMP"), ("n_rows", "BIGINT"),
    ],
    # shared LLM answer cache: key = sha256(sorted clip ids or prompt, template, backend, model, sampling)
    "llm_cache": [
        ("cache_key", "VARCHAR"), ("prompt", "VARCHAR"), ("response", "VARCHAR"), ("backend", "VARCHAR"),
        ("llm_model", "VARCHAR"), ("params_json", "VARCHAR"), ("created_at", "TIMESTAMP"),
    ],
}

PRIMARY_KEYS = {"runs": ("run_id",), "steps": ("step_id",), "llm_cache": ("cache_key",)}
# indexes that keep the app's lookups fast on a paper-scale database
INDEXES = {
    "activations": ("model", "layer", "neuron"),
    "extremes": ("model", "layer", "neuron"),
    "summaries": ("model", "layer", "neuron"),
    "closed_concepts": ("model", "layer", "neuron"),
    "calibration_points": ("model", "layer", "neuron"),
    "open_concepts": ("word",),
    "clip_media": ("sample_rate", "clip_id"),
    "explanations": ("model", "layer", "neuron"),
    "scoring_sets": ("model", "layer", "neuron"),
    "explanation_scores": ("model", "layer", "neuron"),
    "explanation_truth": ("model", "layer", "neuron"),
    "neuron_truth": ("model", "layer", "neuron"),
    "related_neurons": ("model", "layer", "neuron"),
    "neuron_partners": ("model", "other_model"),
    "steps": ("stage", "scope"),
}

TABLES: dict[str, list[tuple[str, str]]] = {
    **BOOK_TABLES,
    **{name: [("step_id", "VARCHAR"), *cols] for name, cols in RESULT_TABLES.items()},
}


def columns(table: str) -> list[str]:
    """Ordered column names of ``table`` (KeyError for an unknown table)."""
    return [c for c, _ in TABLES[table]]


def create_statements() -> list[str]:
    """DDL for every table and index, idempotent (CREATE ... IF NOT EXISTS)."""
    out = []
    for name, cols in TABLES.items():
        body = ", ".join(f'"{c}" {t}' for c, t in cols)
        pk = PRIMARY_KEYS.get(name)
        if pk:
            body += ", PRIMARY KEY (" + ", ".join(pk) + ")"
        out.append(f'CREATE TABLE IF NOT EXISTS "{name}" ({body})')
    for name, cols in INDEXES.items():
        out.append(f'CREATE INDEX IF NOT EXISTS "idx_{name}" ON "{name}" ({", ".join(cols)})')
    return out
