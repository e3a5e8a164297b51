"""Command line: ``python -m and_engine {build,status,report,probe}``.

build   run the pipeline for a TOML config (skips what is done, resumes after a crash)
status  what is built, when, how many rows, and which stages the current config makes stale
report  the paper's tables (Table 2, Table 4, ...) from a built database
probe   load a probing set and list the files that would be skipped, with reasons
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from and_engine.config import ConfigError, ProbingSetConfig, load_config

DEFAULT_CONFIG = "configs/demo.toml"
# stage -> (config sections it reads, stages it reads): a stage is stale when one of its sections changed
# or one of its inputs is stale
STAGE_INPUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "clips": (("probing_set",), ()),
    "model": (("models", "run"), ("clips",)),
    "activations": (("activations",), ("model",)),
    "extremes": (("activations",), ("activations",)),
    "activation_maps": (("activations",), ("extremes",)),
    "captions": (("captions",), ("clips",)),
    "summaries": (("summaries",), ("extremes", "captions")),
    "module_a": (("module_a",), ("activations", "extremes", "captions")),
    "module_a_icl": (("module_a", "summaries"), ("summaries",)),
    "module_b": (("module_b",), ("summaries",)),
    "adjective_checks": (("module_c", "summaries"), ("module_b",)),
    "module_c": (("module_c",), ("module_b", "adjective_checks")),
    "clusters": (("analyses",), ("captions",)),
    "lastlayer": (("analyses",), ("module_a", "module_a_icl")),
    "pruning": (("analyses",), ("module_a", "module_c", "model")),
    "feature_importance": (("analyses",), ("module_c", "model")),
    "adjectives": (("analyses",), ("module_c",)),
    "interpretability": (("analyses",), ("clusters", "extremes")),
    "acoustic_check": (("analyses",), ("module_c", "captions")),
}


def stale_stages(changed: list[str]) -> set[str]:
    """Stages whose configuration or inputs changed, given the changed config sections (unknown = stale)."""
    stale: set[str] = set()
    grew = True
    while grew:
        grew = False
        for stage, (sections, inputs) in STAGE_INPUTS.items():
            if stage not in stale and (set(sections) & set(changed) or set(inputs) & stale):
                stale.add(stage)
                grew = True
    return stale


def _cmd_build(args: argparse.Namespace) -> int:
    from and_engine.pipeline.build import build
    from and_engine.pipeline.core import Progress

    config = load_config(args.config)
    build(config, Progress(quiet=args.quiet), until=args.until)
    return 0


def changed_sections(old: dict, new: dict) -> list[str]:
    """Top-level config sections whose values differ between two ``Config.to_dict()`` dicts."""
    old, new = (json.loads(json.dumps(d, sort_keys=True, default=str)) for d in (old, new))  # tuples -> lists
    return sorted(k for k in new if old.get(k) != new.get(k))


def _cmd_status(args: argparse.Namespace) -> int:
    from and_engine.store.results import ResultsStore, StoreError

    config = load_config(args.config)
    db = config.resolve(config.run.database)
    try:
        store = ResultsStore(db, read_only=True)
    except StoreError as exc:
        print(f"nothing built yet: {exc}")
        return 0
    with store:
        steps = store.query_df(
            "SELECT stage, count(*) AS steps, sum(n_rows) AS rows, max(finished_at) AS last_built "
            "FROM steps GROUP BY stage ORDER BY min(started_at)")
        runs = store.query_df("SELECT config_json, status FROM runs WHERE status = 'done' AND config_json <> '' "
                              "ORDER BY started_at DESC LIMIT 1")
        if runs.empty:
            runs = store.query_df("SELECT config_json, status FROM runs WHERE config_json <> '' "
                                  "ORDER BY started_at DESC LIMIT 1")
    changed = changed_sections(json.loads(runs.config_json[0]), config.to_dict()) if len(runs) else list(config.to_dict())
    stale = stale_stages(changed)
    print(f"database: {db}")
    print(f"config sections changed since the last build: {', '.join(changed) or 'none'}")
    print(f"{'stage':<22}{'steps':>7}{'rows':>12}  {'last built':<20} state")
    for r in steps.itertuples():
        known = r.stage in STAGE_INPUTS
        state = "stale" if r.stage in stale or (changed and not known) else "up to date"
        print(f"{r.stage:<22}{r.steps:>7}{int(r.rows or 0):>12}  {str(r.last_built)[:19]:<20} {state}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from and_engine.report import format_report
    from and_engine.store.results import ResultsStore

    config = load_config(args.config)
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        print(format_report(store, models=args.model or None))
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from and_engine.probing import open_probing_set

    cfg = ProbingSetConfig(kind=args.kind, path=str(args.path))
    ps = open_probing_set(cfg, Path(args.path))
    print(f"{len(ps.clips)} usable clip(s), {len(ps.class_names)} class(es), folds "
          f"{sorted(ps.clips['fold'].unique().tolist())}")
    for label, n in ps.clips.groupby("label").size().items():
        print(f"  {label}: {n}")
    print(f"{len(ps.issues)} file(s) skipped")
    for r in ps.issues.itertuples():
        print(f"  SKIPPED {r.rel_path}: {r.reason}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m and_engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, help_ in [("build", _cmd_build, "build a results database from a config"),
                            ("status", _cmd_status, "show what is built and what is stale"),
                            ("report", _cmd_report, "print the paper's tables from a built database")]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", default=DEFAULT_CONFIG, help=f"TOML config (default {DEFAULT_CONFIG})")
        p.set_defaults(fn=fn)
    b = sub.choices["build"]
    b.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    b.add_argument("--until", default="analyses", help="stop after this step group (probe, models, describe, "
                   "dissect, analyses)")
    sub.choices["report"].add_argument("--model", action="append", help="only this model (repeatable)")
    p = sub.add_parser("probe", help="check a probing set and list the files that would be skipped")
    p.add_argument("path", type=Path, help="probing set folder (or CSV file with --kind csv)")
    p.add_argument("--kind", default="folder", choices=["demo", "esc50", "folder", "csv"])
    p.set_defaults(fn=_cmd_probe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
