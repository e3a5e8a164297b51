"""``python -m and_engine plan``: what a build of a configuration will do and cost, before it runs.

``make_plan(config, store)`` (``store`` None: the database does not exist yet) -> ``Plan``:

* the probing set: clips and classes from the database when its ``clips`` step is up to date, else from
  the metadata's file list (nothing decoded; unusable files are found and skipped by the build);
* per model: layers and neurons from the database when its ``model`` step is up to date, else from the
  architecture alone (``models.registry.layer_specs_without_weights``: no weights loaded, nothing trained);
* every step's state by the derivation ``status`` uses (``status.step_states``), given those layers;
* the LLM rounds (``plan_llm.llm_rounds``): prompts, unique, cached, to send, tokens.

``format_plan(plan)`` -> the lines the command prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from and_engine.config import Config, sae_layer_name
from and_engine.models.base import ModelError
from and_engine.models.registry import layer_specs_without_weights
from and_engine.pipeline.graph import is_sae_layer
from and_engine.pipeline.plan_llm import LLMRound, llm_rounds
from and_engine.pipeline.status import step_states
from and_engine.probing import ProbingSetError, listed_labels
from and_engine.store.results import ResultsStore

ESC50 = (2000, 50)  # the official ESC-50: clips, classes (assumed when its folder is not on this machine)
STEP_COLUMNS = ["stage", "scope", "params_json", "fingerprint"]


@dataclass
class ModelPlan:
    name: str
    kind: str
    layers: dict[str, int]  # layer -> neurons ({} when unknown)
    source: str  # where the layers come from


@dataclass
class Plan:
    config: Config
    database: str
    exists: bool
    n_clips: int | None
    labels: list[str] | None  # one per clip
    clips_source: str
    models: list[ModelPlan]
    states: pd.DataFrame  # stage, scope, state
    rounds: list[LLMRound]
    notes: list[str] = field(default_factory=list)


def _state(states: pd.DataFrame, stage: str, scope: str) -> str | None:
    hit = states.loc[(states["stage"] == stage) & (states["scope"] == scope), "state"]
    return hit.iloc[0] if len(hit) else None


def _probing(config: Config, store: ResultsStore | None, states: pd.DataFrame) -> tuple[list[str] | None, str]:
    cfg = config.probing_set
    if store is not None and _state(states, "clips", "-") == "up to date":
        return store.read("clips", ["label"], order_by=["clip_id"])["label"].tolist(), "the database"
    path = config.resolve(cfg.path)
    try:
        return listed_labels(cfg, path), f"the metadata at {path} (decoded and checked by the build)"
    except ProbingSetError as exc:
        if cfg.kind == "esc50":
            n = min(ESC50[0], cfg.max_clips or ESC50[0])
            return None, f"assumed: the official ESC-50, {n} clips, {ESC50[1]} classes ({exc})"
        return None, f"unknown ({exc})"


def _sae_layers(config: Config, model_cfg, widths: dict[str, int]) -> dict[str, int]:
    """{SAE layer: latents} of ``models[].sae_layers`` whose source width is in ``widths``."""
    return {sae_layer_name(n): config.sae.expansion * widths[n] for n in model_cfg.sae_layers if n in widths}


def _model(config: Config, store: ResultsStore | None, states: pd.DataFrame, model_cfg, n_classes: int | None
           ) -> ModelPlan:
    scope = f"model={model_cfg.name}"
    if store is not None and _state(states, "model", scope) == "up to date":
        rows = store.read("layers", ["layer", "n_neurons"], order_by=["block", "layer"], model=model_cfg.name)
        stored = {str(r.layer): int(r.n_neurons) for r in rows.itertuples() if not is_sae_layer(str(r.layer))}
        if set(model_cfg.sae_layers) <= set(stored):
            return ModelPlan(model_cfg.name, model_cfg.kind, {**stored, **_sae_layers(config, model_cfg, stored)},
                             "the database")
    try:
        specs = layer_specs_without_weights(model_cfg, config, n_classes or 0)
    except (ModelError, OSError, ValueError) as exc:
        return ModelPlan(model_cfg.name, model_cfg.kind, {}, f"unknown: {exc}")
    keep = set(model_cfg.layers) or {s.name for s in specs}
    layers = {s.name: s.n_neurons for s in specs if s.name in keep}
    layers.update(_sae_layers(config, model_cfg, {s.name: s.n_neurons for s in specs}))
    missing = sorted((keep | set(model_cfg.sae_layers)) - {s.name for s in specs})
    return ModelPlan(model_cfg.name, model_cfg.kind, layers, "the architecture, no weights loaded"
                     + (f" (unknown layer(s): {', '.join(missing)})" if missing else ""))


def make_plan(config: Config, store: ResultsStore | None) -> Plan:
    """Config + its database (None: not built yet) -> what a build will do and send to LLMs."""
    steps = store.read("steps", STEP_COLUMNS) if store else pd.DataFrame(columns=STEP_COLUMNS)
    db_layers = store.read("layers", ["model", "layer"]) if store else pd.DataFrame(columns=["model", "layer"])
    first, _ = step_states(config, steps, db_layers)
    labels, clips_source = _probing(config, store, first)
    n_classes = len(set(labels)) if labels is not None else (ESC50[1] if config.probing_set.kind == "esc50" else None)
    models = [_model(config, store, first, m, n_classes) for m in config.models]
    layers = pd.DataFrame([(m.name, layer) for m in models for layer in m.layers], columns=["model", "layer"])
    states, notes = step_states(config, steps, layers)
    estimated = {m.name for m in models if m.source.startswith("the architecture")}
    notes = [n for n in notes if not any(n == f"model {name}: stale, its dissectable layers may change"
                                         for name in estimated)]  # plan listed them as a build will
    per_layer = {(m.name, layer): n for m in models for layer, n in m.layers.items()}
    rounds, llm_notes = llm_rounds(config, store, states, per_layer, labels)
    n_clips = len(labels) if labels is not None else (
        min(ESC50[0], config.probing_set.max_clips or ESC50[0]) if config.probing_set.kind == "esc50" else None)
    return Plan(config, str(config.resolve(config.run.database)), store is not None, n_clips, labels,
                clips_source, models, states, rounds, notes + llm_notes)


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _tokens(value: int | None) -> str:
    """12,271,052 -> '12.3M'; 43,200 -> '43.2k'; None -> '-'."""
    if value is None:
        return "-"
    return f"{value / 1e6:.1f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e4 else f"{value:,}"


def format_plan(plan: Plan) -> list[str]:
    """Plan -> the lines ``python -m and_engine plan`` prints."""
    neurons = sum(sum(m.layers.values()) for m in plan.models)
    classes = len(set(plan.labels)) if plan.labels is not None else None
    out = [f"plan for {plan.config.run.name!r}: database {plan.database}"
           + ("" if plan.exists else " (does not exist yet: every step is new)"),
           f"probing set: {_n(plan.n_clips)} clips, {_n(classes)} classes, from {plan.clips_source}",
           f"models: {len(plan.models)}, layers: {sum(len(m.layers) for m in plan.models):,}, neurons: {neurons:,}"]
    for m in plan.models:
        out.append(f"  {m.name} ({m.kind}): {len(m.layers)} layers, {sum(m.layers.values()):,} neurons, "
                   f"from {m.source}")
    out.append("steps (derived as `status` derives them):")
    for stage, group in plan.states.groupby("stage", sort=False):
        counts = group["state"].value_counts()
        out.append(f"  {stage:<20}" + ", ".join(f"{int(counts[s])} {s}" for s in counts.index))
    out.append("LLM prompts per round (unique: after de-duplication; <=: an upper bound, the prompts are not "
               "built yet; tokens: prompts to send, answers at most / typically):")
    out.append(f"  {'round':<6}{'kind':<17}{'steps':>6}{'prompts':>11}{'unique':>11}{'cached':>9}{'to send':>11}"
               f"{'prompt tok':>11}{'answer tok':>11}{'typical':>9}  llm")
    for r in plan.rounds:
        le = "<=" if r.estimated else ""
        out.append(f"  {r.round:<6}{r.kind:<17}{r.steps:>6}{le + f'{r.prompts:,}':>11}{le + f'{r.unique:,}':>11}"
                   f"{r.cached:>9,}{le + f'{r.send:,}':>11}{_tokens(r.prompt_tokens):>11}"
                   f"{_tokens(r.answer_tokens_max):>11}{_tokens(r.answer_tokens_typical):>9}  {r.llm}")
    if not plan.rounds:
        out.append("  none: every LLM step is up to date")
    out += [f"note: {n}" for n in plan.notes]
    return out
