"""What a build of a configuration would do to a database, without running anything.

``step_states(config, steps, layers)``: for every step the configuration asks for and every committed
step, its state: "up to date" (the build skips it), "stale" (recomputed), "new", "maybe new" (an
``optional`` stage whose step depends on data not computed yet) or "removed". A committed step is up to
date when the fingerprint ``core.run_stage`` would give it equals the stored one: its stored params with
the config part replaced by ``graph.config_part(stage, config, scope)``, and the fingerprints of its
upstream steps (unknown, so stale, when one of those is stale or new). Status cannot see what changed
outside the configuration (edited audio files, another backend version): the build will.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from and_engine.config import Config
from and_engine.pipeline import graph
from and_engine.pipeline.core import fingerprint_of
from and_engine.store.results import scope_key

STATES = ("up to date", "stale", "new", "maybe new", "removed")


def _scopes(stage: graph.Stage, config: Config, db_layers: dict[str, list[str]], notes: set[str]) -> list[dict]:
    """The scopes ``config`` asks ``stage`` for (a model's layers: its configured list, else the stored one)."""
    if stage.scope == graph.GLOBAL:
        return [{}]
    if stage.scope == graph.PER_MODEL:
        return [{"model": m.name} for m in config.models]
    out = []
    for m in config.models:
        names = graph.layer_names(m, db_layers.get(m.name))
        if names is None or (not m.layers and m.name not in db_layers):
            notes.add(f"model {m.name}: new, with every dissectable layer (known once the model is loaded)")
        out += [{"model": m.name, "layer": layer} for layer in names or []]
    return out


def _refingerprint(stage: graph.Stage, config: Config, scope: dict, params_json: str, upstream: list[str]) -> str:
    params = json.loads(params_json) if params_json else {}
    params["config"] = graph.config_part(stage, config, scope)
    return fingerprint_of(stage.name, scope, params, upstream)


def step_states(config: Config, steps: pd.DataFrame, layers: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``config`` + the database's ``steps`` rows (stage, scope, params_json, fingerprint) and ``layers`` rows
    (model, layer) -> (DataFrame stage, scope, state in STATES; notes on what cannot be told in advance)."""
    stored = {(r.stage, r.scope): r for r in steps.itertuples()}
    db_layers: dict[str, list[str]] = {}
    for r in layers.itertuples():
        db_layers.setdefault(r.model, []).append(r.layer)
    expected: dict[graph.StepKey, str | None] = {}  # fingerprint a build would give, None if recomputed
    rows, notes = [], set()
    for st in graph.STAGES:
        seen = set()
        for scope in _scopes(st, config, db_layers, notes):
            if not graph.exists(st, config, scope):
                continue
            key = scope_key(scope)
            ups = graph.upstream_keys(st, config, scope, expected)
            changed = any(expected[k] is None for k in ups)
            row = stored.get((st.name, key))
            if row is None and st.optional and not changed:
                continue  # absent, and nothing it depends on changes
            seen.add(key)
            fp = None
            if row is None:
                state = "maybe new" if st.optional else "new"
            else:
                fp = None if changed else _refingerprint(st, config, scope, row.params_json, [expected[k] for k in ups])
                state = "up to date" if fp == row.fingerprint else "stale"
            expected[(st.name, graph.scope_of(scope))] = fp if state == "up to date" else None
            rows.append((st.name, key, state))
        rows += [(st.name, key, "removed") for stage, key in stored if stage == st.name and key not in seen]
        if st.name == "model":
            notes |= {f"model {m.name}: stale, its dissectable layers may change" for m in config.models
                      if not m.layers and expected.get(("model", (("model", m.name),)), "") is None}
    rows += [(stage, key, "removed") for stage, key in stored if stage not in graph.STAGE]
    return pd.DataFrame(rows, columns=["stage", "scope", "state"]), sorted(notes)


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    """A ``Config.to_dict()`` (or its JSON) -> {dotted leaf key: value}; models keyed by name."""
    if isinstance(value, dict) and not prefix.endswith("options"):
        for k, v in value.items():
            _flat(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flat(v, f"{prefix}[{v.get('name', i) if prefix == 'models' else i}]", out)
    else:
        out[prefix] = value
    return out


def changed_keys(old: dict, new: dict) -> list[str]:
    """Leaf keys whose values differ between two ``Config.to_dict()`` dicts (``models[<name>].key``)."""
    old, new = (_flat(json.loads(json.dumps(d, sort_keys=True, default=str)), "", {}) for d in (old, new))
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
