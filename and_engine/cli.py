"""Command line: ``python -m and_engine {build,plan,status,report,probe}``.

build   run the pipeline for a TOML config (skips what is done, resumes after a crash)
plan    before a build: clips, models, neurons, stale steps, LLM prompts and tokens per round, what is cached
status  what is built, when, how many rows, and what a build of the config would recompute
report  the paper's tables (Table 2, Table 4, ...) from a built database
probe   load a probing set and list the files that would be skipped, with reasons
export  a neuron, a layer or a model of a built database to Parquet / JSON / CSV
(status and report exit 1 when the database is missing, unreadable or holds nothing built; 2 on a bad config)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from and_engine.config import ConfigError, ProbingSetConfig, load_config

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CONFIG = "configs/demo.toml"
EXIT_BUILD_RUNNING = 75  # build --no-wait: another build of the same database is running (EX_TEMPFAIL)
READ_WAIT_S = 60.0  # status / report wait this long for a running build to finish a commit


def _cmd_build(args: argparse.Namespace) -> int:
    from and_engine.pipeline.build import build
    from and_engine.pipeline.core import Progress
    from and_engine.store.build_status import BuildRunningError

    config = load_config(args.config)
    if args.background:
        return _background_build(args, config)
    try:
        build(config, Progress(quiet=args.quiet, bars=not args.no_bars), until=args.until,
              **({"wait_s": 0.0} if args.no_wait else {}))
    except BuildRunningError as exc:
        print(f"{exc} (its progress: the app's banner, or {config.run.database}.build.json)", file=sys.stderr)
        return EXIT_BUILD_RUNNING
    return 0


def _background_build(args: argparse.Namespace, config) -> int:
    """Start the same build as a detached process (log lines, no bars, into ``<database>.build.log``)."""
    import subprocess

    log = Path(str(config.resolve(config.run.database)) + ".build.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "and_engine", "build", "--config", args.config, "--until", args.until, "--no-bars",
           *(["--no-wait"] if args.no_wait else [])]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # not stopped by the terminal's Ctrl+C
    print(f"building in the background: process {proc.pid}, log {log}")
    return 0


def _short(scope: str) -> str:
    """A scope key for display: 'layer=b1/model=yamnet' -> 'yamnet/b1'."""
    parts = dict(p.partition("=")[::2] for p in scope.split("/") if "=" in p)
    return "/".join(parts[k] for k in ("model", "layer") if k in parts) or scope


def _state_text(states: pd.DataFrame) -> str:
    """One stage's step states -> "up to date" / "recompute 2 of 4 (m/l, m/l), +1 new (m/l), -2 removed"."""
    existing = int(states["state"].isin(["up to date", "stale", "removed"]).sum())
    parts = []
    for state, text in (("stale", "recompute {n} of " + str(existing)), ("new", "+{n} new"),
                        ("maybe new", "+{n} new if the data allow"), ("removed", "-{n} removed")):
        scopes = states.loc[states["state"] == state, "scope"].tolist()
        if scopes:
            few = scopes != ["-"] and len(scopes) <= 3 and len(scopes) != existing
            parts.append(text.format(n=len(scopes)) + (f" ({', '.join(map(_short, scopes))})" if few else ""))
    return ", ".join(parts) or "up to date"


NOTHING_BUILT = 1  # exit status of status / report when there is nothing built to show


def _open_results(args: argparse.Namespace, db: Path):
    """The results database ``db``, read-only -> ResultsStore, or None after saying why (missing / locked)."""
    from and_engine.store.results import ResultsStore, StoreError

    if not db.exists():
        print(f"nothing built yet: no results database at {db}\n{_build_hint(args)}", file=sys.stderr)
        return None
    try:
        return ResultsStore(db, read_only=True, wait_s=READ_WAIT_S)  # a running build may be committing
    except StoreError as exc:
        print(f"cannot read {db} (a build may be writing it; try again when it is done): {exc}", file=sys.stderr)
        return None


def _build_hint(args: argparse.Namespace) -> str:
    return f"build it: python -m and_engine build --config {args.config}"


def _cmd_status(args: argparse.Namespace) -> int:
    from and_engine.explorer import build_progress
    from and_engine.explorer.queries import last_finished_run
    from and_engine.pipeline.status import changed_keys, step_states
    from and_engine.pipeline.validate import validate

    config = validate(load_config(args.config))
    db = config.resolve(config.run.database)
    store = _open_results(args, db)
    if store is None:
        return NOTHING_BUILT
    with store:
        steps = store.read("steps", ["stage", "scope", "params_json", "fingerprint", "n_rows", "finished_at"])
        layers = store.read("layers", ["model", "layer"])
        last = last_finished_run(store)  # never a failed, interrupted or running build
        runs = store.read("runs", ["status", "started_at"], order_by=["started_at"])
    print(f"database: {db}")
    running = build_progress.banner(db)
    if running is not None:
        print(running[1])
    if steps.empty:
        newest = (f" (the last build, started {str(runs['started_at'].iloc[-1])[:19]}, is "
                  f"{runs['status'].iloc[-1]!r})") if len(runs) else ""
        print(f"nothing built yet: the database holds no finished step{newest}\n{_build_hint(args)}",
              file=sys.stderr)
        return NOTHING_BUILT
    if last:
        changed = changed_keys(json.loads(last["config_json"]), config.to_dict())
        print(f"config keys changed since the last finished build: {', '.join(changed) or 'none'}")
    else:
        print("no build has finished yet")
    states, notes = step_states(config, steps, layers)
    built = steps.groupby("stage").agg(steps=("scope", "size"), rows=("n_rows", "sum"), last=("finished_at", "max"))
    print(f"{'stage':<20}{'steps':>6}{'rows':>11}  {'last built':<20} what a build would do")
    for stage, group in states.groupby("stage", sort=False):
        b = built.loc[stage] if stage in built.index else None
        n, rows, last = (int(b["steps"]), int(b["rows"] or 0), str(b["last"])[:19]) if b is not None else (0, 0, "")
        print(f"{stage:<20}{n:>6}{rows:>11}  {last:<20} {_state_text(group)}")
    for note in notes:
        print(f"note: {note}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from and_engine.pipeline.plan import format_plan, make_plan
    from and_engine.store.results import ResultsStore

    config = load_config(args.config)
    db = config.resolve(config.run.database)
    if not db.exists():
        plan = make_plan(config, None)
    else:
        with ResultsStore(db, read_only=True, wait_s=READ_WAIT_S) as store:
            plan = make_plan(config, store)
    print("\n".join(format_plan(plan)))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from and_engine.report import format_report

    config = load_config(args.config)
    store = _open_results(args, config.resolve(config.run.database))
    if store is None:
        return NOTHING_BUILT
    with store:
        if not store.count("models"):
            print(f"nothing to report: {store.path} holds no built model yet\n{_build_hint(args)}", file=sys.stderr)
            return NOTHING_BUILT
        print(format_report(store, models=args.model or None))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from and_engine.explorer.export import export_tables, stem, write_export
    from and_engine.explorer.queries import NotFoundError

    if args.db:
        db = Path(args.db).expanduser()
    else:
        config = load_config(args.config)
        db = config.resolve(config.run.database)
    store = _open_results(args, db)
    if store is None:
        return NOTHING_BUILT
    with store:
        try:
            tables = export_tables(store, args.model, args.layer, args.neuron)
        except NotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    name = stem(args.model, args.layer, args.neuron)
    for path in write_export(tables, args.format, Path(args.out), name):
        print(path)
    return 0


PROBLEM_PREFIX = {"always": "a build would refuse: ", "trained": "a build that trains a variant would refuse "
                  "(otherwise a warning): ", "": "warning: "}


def _cmd_probe(args: argparse.Namespace) -> int:
    from and_engine.config import ActivationsConfig
    from and_engine.probing import open_probing_set, problems

    cfg = ProbingSetConfig(kind=args.kind, path=str(args.path))
    ps = open_probing_set(cfg, Path(args.path))
    print(f"{len(ps.clips)} usable clip(s), {len(ps.class_names)} class(es), folds "
          f"{sorted(ps.clips['fold'].unique().tolist())}")
    for label, n in ps.clips.groupby("label").size().items():
        print(f"  {label}: {n}")
    print(f"{len(ps.issues)} file(s) skipped")
    for r in ps.issues.itertuples():
        print(f"  SKIPPED {r.rel_path}: {r.reason}")
    top_k = ActivationsConfig().top_k
    found = problems(ps.clips, top_k, cfg.heldout_fold)
    if found:
        print(f"checked with the defaults activations.top_k = {top_k}, probing_set.heldout_fold = {cfg.heldout_fold}:")
    for p in found:
        print(f"  {PROBLEM_PREFIX[p.refuses]}{p.message}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m and_engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, help_ in [("build", _cmd_build, "build a results database from a config"),
                            ("plan", _cmd_plan, "before a build: what it will compute, LLM prompts and tokens"),
                            ("status", _cmd_status, "show what is built and what is stale"),
                            ("report", _cmd_report, "print the paper's tables from a built database")]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", default=DEFAULT_CONFIG, help=f"TOML config (default {DEFAULT_CONFIG})")
        p.set_defaults(fn=fn)
    b = sub.choices["build"]
    b.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    b.add_argument("--until", default="analyses", help="stop after this step group (probe, models, describe, "
                   "dissect, scores, analyses)")
    b.add_argument("--no-bars", action="store_true", help="log lines without progress bars (for log files)")
    b.add_argument("--background", action="store_true", help="run the build as a detached process (its log: "
                   "<database>.build.log; the app shows its progress) and return at once")
    b.add_argument("--no-wait", action="store_true", help=f"exit at once (status {EXIT_BUILD_RUNNING}) when "
                   "another build of the same database is running, instead of waiting for it")
    sub.choices["report"].add_argument("--model", action="append", help="only this model (repeatable)")
    p = sub.add_parser("probe", help="check a probing set and list the files that would be skipped")
    p.add_argument("path", type=Path, help="probing set folder (or CSV file with --kind csv)")
    p.add_argument("--kind", default="folder", choices=["demo", "esc50", "folder", "csv"])
    p.set_defaults(fn=_cmd_probe)
    p = sub.add_parser("export", help="write a neuron, a layer or a model to Parquet / JSON / CSV")
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"TOML config whose database is read (default "
                   f"{DEFAULT_CONFIG})")
    p.add_argument("--db", help="a results database to read instead of the config's")
    p.add_argument("--model", required=True, help="the model's name")
    p.add_argument("--layer", help="only this layer (default: every dissected layer)")
    p.add_argument("--neuron", type=int, help="only this neuron of --layer")
    p.add_argument("--format", default="parquet", choices=["parquet", "json", "csv"])
    p.add_argument("--out", default="export", help="output folder (default ./export)")
    p.set_defaults(fn=_cmd_export)
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
