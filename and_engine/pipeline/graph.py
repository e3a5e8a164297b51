"""The pipeline graph, declared once: every stage, its scope, the config keys it reads, its upstream stages,
the tables it fills and the step group that runs it.

``build`` runs the groups in ``GROUPS`` order (``build.RUNNERS`` holds each group's step function);
``core.run_stage`` fingerprints a step from exactly the keys declared here (``config_part``) plus the
fingerprints of its upstream steps (``upstream_keys``); ``status`` recomputes the same fingerprints for
another configuration. A key ``models[].x`` is the scope's own model's value (every model's, in a global
scope). ``When`` marks a key or upstream stage that counts only under a condition, or a stage that exists
only under one. Every leaf key of ``Config`` is read by a stage, or listed in ``NOT_READ`` or ``IDENTITY``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from and_engine.config import SAE_SUFFIX, Config, LLMConfig, ModelConfig, sae_layer_name

GROUPS = ("probe", "models", "describe", "dissect", "scores", "analyses")
GLOBAL, PER_MODEL, PER_LAYER = (), ("model",), ("model", "layer")
Scope = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: (), (("model", m),), (("layer", l), ("model", m))
StepKey = tuple[str, Scope]  # (stage, scope)
TRAINED_KINDS = ("yamnet-frozen", "yamnet-finetuned", "ast-scratch")


@dataclass(frozen=True)
class When:
    """``item`` (a config key, an upstream stage, or the stage itself) counts only if ``test(config, model)``."""

    item: str
    test: Callable[[Config, ModelConfig | None], bool]
    why: str


@dataclass(frozen=True)
class Stage:
    name: str
    group: str  # the step group (GROUPS) whose step function runs it
    scope: tuple[str, ...]  # GLOBAL, PER_MODEL or PER_LAYER
    tables: tuple[str, ...]  # result tables its steps fill
    upstream: tuple[str | When, ...]  # stages whose fingerprints enter this one's
    reads: tuple[str | When, ...]  # dotted config keys whose values enter the fingerprint
    only_if: When | None = None  # the stage exists only when this holds (decided by the configuration)
    optional: str = ""  # when a step may be absent for reasons of data (status cannot tell in advance)
    sae_only: bool = False  # a per-layer stage with steps for the SAE layers only (models[].sae_layers)


def _trained(_c: Config, m: ModelConfig | None) -> bool:
    return m is None or m.kind in TRAINED_KINDS


def _from_checkpoint(_c: Config, m: ModelConfig | None) -> bool:
    return m is None or m.kind == "ast-checkpoint"


def _calibrated(c: Config, _m: ModelConfig | None) -> bool:
    return c.module_a.icl_summary == "calibrated"


def _icl(c: Config, _m: ModelConfig | None) -> bool:
    return c.module_a.icl


def _llm_set(key: str, overrides: bool = False) -> Callable[[Config, ModelConfig | None], bool]:
    """Whether a weights setting of the summaries' LLM (of any override's) differs from its default: counted
    only then, so builds made before the setting existed keep their fingerprints."""
    def test(c: Config, _m: ModelConfig | None) -> bool:
        llms = [o.llm for o in c.summaries.overrides] if overrides else [c.summaries.llm]
        return any(getattr(llm, key) != getattr(LLMConfig(), key) for llm in llms)
    return test


LLM_KEYS = ("backend", "model", "base_url", "temperature", "top_p", "max_new_tokens", "seed")
LLM_WEIGHTS = ("dtype", "quantization")  # change the answers of local engines: counted when not the default
SUMMARY_LLM = (*(f"summaries.llm.{k}" for k in LLM_KEYS),
               *(When(f"summaries.llm.{k}", _llm_set(k), f"llm.{k} set") for k in LLM_WEIGHTS))
OVERRIDES = (*(f"summaries.overrides[].llm.{k}" for k in LLM_KEYS), "summaries.overrides[].models",
             "summaries.overrides[].layers", "summaries.overrides[].sample_neurons",
             *(When(f"summaries.overrides[].llm.{k}", _llm_set(k, True), f"llm.{k} set") for k in LLM_WEIGHTS))
SECONDS = "probing_set.clip_seconds"  # every stage that decodes waveforms reads it

LABELLED = "models whose classes are the probing labels"
STAGES: tuple[Stage, ...] = (
    Stage("clips", "probe", GLOBAL, tables=("clips", "clip_issues"), upstream=(), reads=(
        "probing_set.kind", "probing_set.path", "probing_set.min_seconds", "probing_set.silence_dbfs",
        "probing_set.max_clips")),
    Stage("model", "models", PER_MODEL, tables=("models", "layers"), upstream=("clips",), reads=(
        "models[].kind", "models[].layers", "models[].options", SECONDS, "probing_set.heldout_fold",
        When("models[].checkpoint", _from_checkpoint, "kind ast-checkpoint"),
        When("models[].train_epochs", _trained, "trained variants"),
        When("models[].train_lr", _trained, "trained variants"), When("run.seed", _trained, "trained variants"))),
    Stage("sae", "models", PER_LAYER, tables=("sae_metrics", "layers"), upstream=("model",), reads=(
        "sae.expansion", "sae.k", "sae.epochs", "sae.lr", "sae.batch_size", "sae.max_vectors", "run.seed",
        "probing_set.heldout_fold", SECONDS), sae_only=True),
    Stage("activations", "models", PER_LAYER, tables=("activations",), upstream=("model", "sae"),
          reads=("activations.pool", "activations.precision", SECONDS)),
    Stage("extremes", "models", PER_LAYER, tables=("extremes",), upstream=("activations",),
          reads=("activations.top_k",)),
    Stage("activation_maps", "models", PER_LAYER, tables=("activation_maps",), upstream=("model", "activations"),
          reads=("activations.top_k", "activations.keep_maps", "activations.precision", SECONDS),
          optional="layers with a time-frequency map grid"),
    Stage("clip_media", "models", GLOBAL, tables=("clip_media",), upstream=("clips", "model"), reads=(SECONDS,)),
    Stage("captions", "describe", GLOBAL, tables=("captions", "acoustic_features"), upstream=("clips",), reads=(
        "captions.backend", "captions.model_path", "captions.prompt", "captions.max_new_tokens", "captions.tagger",
        "captions.tag_threshold", "captions.max_tags", SECONDS)),
    Stage("summaries", "describe", PER_LAYER, tables=("summaries",), upstream=("extremes", "captions"),
          reads=(*SUMMARY_LLM, *OVERRIDES, "run.seed")),
    Stage("module_a", "dissect", PER_LAYER, tables=("closed_concepts",),
          upstream=("clips", "captions", "activations", "extremes"), reads=(
              "module_a.concept_set", "module_a.text_encoder", "module_a.audio_text_model", "module_a.similarities",
              "module_a.db_scope", "module_a.top_n", SECONDS)),
    Stage("module_b", "dissect", PER_LAYER, tables=("calibration_points", "calibrated_summaries"),
          upstream=("summaries",),
          reads=("module_b.threshold", "module_b.sentence_encoder", "module_b.keep_opposites")),
    Stage("adjective_checks", "dissect", GLOBAL, tables=("adjective_checks",), upstream=("module_b",), reads=(
        "module_c.tagger", "module_c.adjective_filter", "analyses.basic_adjectives", *SUMMARY_LLM)),
    Stage("module_c", "dissect", PER_LAYER, tables=("open_concepts", "pos_counts"),
          upstream=("module_b", "adjective_checks"),
          reads=("module_c.tagger", "module_c.adjective_filter", "analyses.basic_adjectives")),
    Stage("module_a_icl", "dissect", PER_LAYER, tables=("closed_concepts",), upstream=(
        "summaries", When("module_b", _calibrated, "module_a.icl_summary = calibrated")), reads=(
        "module_a.concept_set", "module_a.text_encoder", "module_a.top_n", "module_a.icl_summary", *SUMMARY_LLM),
        only_if=When("module_a.icl", lambda c, _m: c.module_a.icl, "module_a.icl = true")),
    Stage("scores", "scores", PER_LAYER, tables=("explanations", "scoring_sets", "explanation_scores", "score_summary"),
          upstream=("clips", "captions", "activations", "extremes", "summaries", "module_a", "module_b", "module_c",
                    When("module_a_icl", _icl, "module_a.icl = true")), reads=(
              "scores.scorers", "scores.n_activating", "scores.n_non_activating", "scores.activating_fraction",
              "scores.text_encoder", "scores.audio_text_model", "run.seed", SECONDS)),
    Stage("llm_scores", "scores", PER_LAYER, tables=("explanation_scores", "score_summary"),
          upstream=("captions", "activations", "scores"), reads=(
              "scores.llm_scorers", "scores.llm_neurons", "scores.llm_clips_per_prompt", "run.seed", *SUMMARY_LLM),
          only_if=When("scores.llm_scorers", lambda c, _m: bool(c.scores.llm_scorers), "scores.llm_scorers set")),
    Stage("caption_truth", "scores", GLOBAL, tables=("caption_truth",), upstream=("clips", "captions"),
          reads=("ground_truth.label_words",)),
    Stage("ground_truth", "scores", PER_LAYER, tables=("neuron_truth", "explanation_truth", "truth_rates"),
          upstream=("caption_truth", "extremes", "scores"), reads=("ground_truth.label_words",)),
    Stage("clusters", "analyses", GLOBAL, tables=("caption_sentences", "cluster_elbow", "cluster_words"),
          upstream=("captions",), reads=("analyses.n_clusters", "analyses.elbow_max_k", "analyses.cluster_words_n",
                                         "analyses.sentence_encoder", "run.seed")),
    Stage("adjectives", "analyses", PER_MODEL, tables=("adjective_stats", "top_adjectives"),
          upstream=("model", "module_c"), reads=("analyses.top_adjectives_n",)),
    Stage("interpretability", "analyses", PER_MODEL, tables=("interpretability",),
          upstream=("model", "extremes", "clusters"), reads=("analyses.taus",)),
    Stage("acoustic_check", "analyses", PER_MODEL, tables=("acoustic_check",),
          upstream=("module_c", "extremes", "captions"), reads=("analyses.acoustic_adjectives",)),
    Stage("lastlayer", "analyses", PER_MODEL, tables=("lastlayer_accuracy",),
          upstream=("model", "module_a", "module_a_icl"), reads=("analyses.sentence_encoder", "module_a.concept_set"),
          optional=f"{LABELLED}, with a dissected classifier"),
    Stage("pruning", "analyses", PER_MODEL, tables=("pruning_summary", "pruning_per_class"),
          upstream=("model", "module_a", "module_c", "lastlayer"), reads=(
              "analyses.closed_top_n_for_pruning", "analyses.pruning_similarity", "analyses.prune_classifier",
              "run.seed", SECONDS, "activations.precision"), optional=f"{LABELLED}, with a layer to prune"),
    Stage("related_neurons", "analyses", GLOBAL, tables=("related_neurons", "neuron_partners"),
          upstream=("activations",), reads=("analyses.related_top_n",)),
    Stage("feature_importance", "analyses", PER_MODEL, tables=("feature_importance",),
          upstream=("model", "module_c"), reads=(
              "analyses.prune_percents", "analyses.seeds", "analyses.basic_adjectives", "analyses.prune_classifier",
              SECONDS, "activations.precision"), optional=f"{LABELLED}, with a layer to prune"),
)
STAGE = {s.name: s for s in STAGES}

# keys that change no stored result: no fingerprint holds them, so changing them recomputes nothing
NOT_READ = {
    "run.name": "a label of the run", "run.database": "where results go (another database starts empty)",
    "run.ratings_database": "human ratings live apart from results",
    "run.live_llm_database": "the app's live LLM answers live apart from results",
    "run.cache_dir": "where trained checkpoints are cached; the weights do not depend on it",
    "activations.batch_size": "batching", "activations.device": "where the forward pass runs",
    "activations.num_threads": "CPU threads", "activations.compile": "torch.compile runs the same network",
    "captions.batch_size": "batching", "captions.device": "where the captioner runs",
    "summaries.llm.timeout_s": "how long to wait", "summaries.llm.batch_size": "batching",
    "summaries.overrides[].llm.timeout_s": "how long to wait", "summaries.overrides[].llm.batch_size": "batching",
    "summaries.llm.commit_every": "how often answers are committed to llm_cache",
    "summaries.overrides[].llm.commit_every": "how often answers are committed to llm_cache",
    **{f"{section}.{k}": why for section in ("summaries.llm", "summaries.overrides[].llm") for k, why in (
        ("device", "where the LLM runs"), ("n_gpu_layers", "how much of llama.cpp runs on the GPU"),
        ("tensor_parallel_size", "how many GPUs share the model"), ("max_model_len", "the engine's context room"),
        ("gpu_memory_utilization", "the engine's memory share"), ("max_num_seqs", "scheduling"))},
    "device.text_encoders": "where the encoders run", "device.audio_text": "where the audio-text model runs",
    "device.text_batch_size": "batching", "device.audio_batch_size": "batching",
    # [execution]: the same stage functions on the same inputs, in actors (tests/test_ray_execution.py)
    "execution.engine": "where the stages run (local or Ray actors)", "execution.address": "which Ray cluster",
    **{f"execution.{stage}.{k}": why for stage in ("activations", "captions", "embeddings", "llm") for k, why in (
        ("num_cpus", "resources per actor"), ("num_gpus", "resources per actor"), ("actors", "parallelism"),
        ("batch_size", "batching"))},
    "analyses.workers": "threads evaluating the same pruning passes",
}
IDENTITY = {"models[].name": "names the model a scope belongs to (a new name is a new model)",
            "models[].sae_layers": "names the SAE layers, the scopes of the sae stage (a new name is a new layer)"}


def config_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every leaf key of the configuration, dotted; items of a tuple of tables as ``name[].key``."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        args = typing.get_args(t)
        if dataclasses.is_dataclass(t):
            out += config_keys(t, f"{prefix}{f.name}.")
        elif typing.get_origin(t) is tuple and args and dataclasses.is_dataclass(args[0]):
            out += config_keys(args[0], f"{prefix}{f.name}[].")
        else:
            out.append(prefix + f.name)
    return out


def read_keys(stage: Stage) -> list[str]:
    return [r.item if isinstance(r, When) else r for r in stage.reads]


def _value(obj: Any, parts: list[str]) -> Any:
    for i, part in enumerate(parts):
        if part.endswith("[]"):
            return [_value(item, parts[i + 1:]) for item in getattr(obj, part[:-2])]
        obj = getattr(obj, part)
    return obj


def model_config(config: Config, scope: Mapping[str, str]) -> ModelConfig | None:
    """The configured model of a scope (None for a global scope or a model no longer configured)."""
    name = scope.get("model")
    return next((m for m in config.models if m.name == name), None) if name is not None else None


def key_value(config: Config, key: str, model: ModelConfig | None = None) -> Any:
    """The value of dotted ``key``; ``models[].x`` of ``model`` when given, else the list over all models."""
    if key.startswith("models[].") and model is not None:
        return getattr(model, key.removeprefix("models[]."))
    return _value(config, key.split("."))


def config_part(stage: Stage, config: Config, scope: Mapping[str, str]) -> dict[str, Any]:
    """{key: value} of exactly the keys ``stage`` declares (conditions decided by the scope's model)."""
    model = model_config(config, scope)
    out = {}
    for r in stage.reads:
        if isinstance(r, When) and not r.test(config, model):
            continue
        key = r.item if isinstance(r, When) else r
        out[key] = key_value(config, key, model)
    return out


def is_sae_layer(layer: str) -> bool:
    """Whether a layer name is an SAE layer's (``<source layer>.sae``)."""
    return layer.endswith(SAE_SUFFIX)


def exists(stage: Stage, config: Config, scope: Mapping[str, str]) -> bool:
    """Whether the configuration asks for this stage at all (data may still leave an ``optional`` step out)."""
    if stage.sae_only and not is_sae_layer(scope.get("layer", "")):
        return False
    return stage.only_if is None or stage.only_if.test(config, model_config(config, scope))


def layer_names(model: ModelConfig, stored: list[str] | None) -> list[str] | None:
    """The layers of ``model`` with per-layer steps: its dissected layers (``models[].layers``, else ``stored``:
    those in the database, None = not known yet) and then its SAE layers."""
    saes = [sae_layer_name(layer) for layer in model.sae_layers]
    if model.layers:
        return [*model.layers, *saes]
    if stored is None:
        return saes or None
    return [n for n in stored if not is_sae_layer(n)] + saes


def scope_of(scope: Mapping[str, Any]) -> Scope:
    return tuple(sorted((k, str(v)) for k, v in scope.items()))


def upstream_stages(stage: Stage, config: Config, scope: Mapping[str, str]) -> list[str]:
    model = model_config(config, scope)
    return [u.item if isinstance(u, When) else u for u in stage.upstream
            if not isinstance(u, When) or u.test(config, model)]


def upstream_keys(stage: Stage, config: Config, scope: Mapping[str, str], steps: typing.Iterable[StepKey]
                  ) -> list[StepKey]:
    """Of ``steps``, those whose fingerprints enter (stage, scope): every step of an upstream stage whose
    scope agrees with ``scope`` on the names both have (a layer reads its model's step, a model all its
    layers' steps, a global step all steps) -> in upstream order, then by model and layer."""
    mine = dict(scope_of(scope))
    ups = upstream_stages(stage, config, scope)
    found = [(s, sc) for s, sc in steps if s in ups and all(mine.get(k, v) == v for k, v in sc)]
    return sorted(found, key=lambda k: (ups.index(k[0]), dict(k[1]).get("model", ""), dict(k[1]).get("layer", "")))


def missing_upstream(stage: Stage, config: Config, scope: Mapping[str, str], steps: typing.Iterable[StepKey]
                     ) -> list[str]:
    """Upstream stages ``stage`` cannot do without that have no step for ``scope`` among ``steps``: those
    not ``optional`` whose scope is no finer than ``scope`` (a global or same-model step)."""
    found = {s for s, _ in upstream_keys(stage, config, scope, steps)}
    return [u for u in upstream_stages(stage, config, scope) if u not in found and not STAGE[u].optional
            and set(STAGE[u].scope) <= set(scope) and exists(STAGE[u], config, scope)]


def stages_of(group: str) -> tuple[str, ...]:
    return tuple(s.name for s in STAGES if s.group == group)


def check_graph() -> list[str]:
    """Problems of the declarations: unknown keys or stages, upstream declared after its stage, leaf keys
    of Config that nothing declares -> [] when consistent."""
    keys, problems, seen = set(config_keys()), [], set()
    for s in STAGES:
        problems += [f"{s.name}: unknown key {k}" for k in read_keys(s) if k not in keys]
        ups = [u.item if isinstance(u, When) else u for u in s.upstream]
        problems += [f"{s.name}: upstream {u} is not declared before it" for u in ups if u not in seen]
        problems += [f"{s.name}: unknown group {s.group}" for _ in [0] if s.group not in GROUPS]
        seen.add(s.name)
    declared = {k for s in STAGES for k in read_keys(s)} | set(NOT_READ) | set(IDENTITY)
    declared |= {s.only_if.item for s in STAGES if s.only_if}
    problems += [f"config key {k} is read by no stage and not listed in NOT_READ" for k in sorted(keys - declared)]
    return problems
