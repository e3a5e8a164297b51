"""Running one pipeline step: skip when unchanged, otherwise compute and commit atomically.

``run_stage(ctx, stage, scope, extra, compute)``: the step's params are the config keys the graph
declares for ``stage`` (``graph.config_part``) plus ``extra`` (content hashes, backend ``describe()``);
its upstream fingerprints are those of the graph's upstream steps already run in this build.
``run_step`` (the same with params and upstream given): fingerprint = hash(stage, scope, params,
upstream fingerprints). Same fingerprint as the committed step -> skipped. Otherwise ``compute()``
returns {table: rows}; the store replaces the rows of (stage, scope) in one transaction. A crash before
COMMIT leaves the previous rows in place, so a rerun redoes only unfinished steps.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from and_engine import __version__
from and_engine.backends.registry import make
from and_engine.config import PROJECT_ROOT, Config, stable_hash
from and_engine.pipeline import graph
from and_engine.probing import ProbingSet, count_entries, open_probing_set
from and_engine.store.results import ResultsStore, scope_key

Tables = Mapping[str, pd.DataFrame | pa.Table]


class Progress:
    """Progress bars (tqdm on stderr; ``bars=False``: none) and log lines; ``quiet=True``: neither (tests).
    With ``status`` (a ``store.build_status.StatusWriter``) the current step and bar are also written for the
    app to show."""

    def __init__(self, quiet: bool = False, bars: bool = True):
        self.quiet = quiet
        self.bars = bars and not quiet
        self.messages: list[str] = []
        self.status = None

    def log(self, msg: str) -> None:
        self.messages.append(msg)
        if not self.quiet:
            print(f"[and] {msg}", file=sys.stderr, flush=True)

    def report(self, force: bool = False, **fields: Any) -> None:
        """Update the build's status file, if any (throttled unless ``force``)."""
        if self.status is not None:
            self.status.update(force=force, **fields)

    @contextmanager
    def bar(self, total: int, desc: str) -> Iterator[Any]:
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, disable=not self.bars, file=sys.stderr, leave=False, dynamic_ncols=True) as b:
            yield _Bar(b, self, desc)
        self.report(force=True, bar={})


class _Bar:
    """A tqdm bar whose updates also go to the build's status file (``update(n)``, ``reset(total)``, ``n``,
    ``total``)."""

    def __init__(self, bar: Any, progress: Progress, desc: str):
        self._bar, self._progress, self.desc = bar, progress, desc
        self.n = 0
        self._report(force=True)  # a new bar is shown at once, even right after another write

    @property
    def total(self) -> int:
        return self._bar.total

    @total.setter
    def total(self, value: int) -> None:
        self._bar.total = value
        self._bar.refresh()
        self._report()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._bar.update(n)
        self._report()

    def reset(self, total: int | None = None) -> None:
        """Start again from 0 (with a new ``total``), as tqdm's ``reset``."""
        self.n = 0
        self._bar.reset(total=total)
        self._report()

    def _report(self, force: bool = False) -> None:
        self._progress.report(force, bar={"desc": self.desc, "done": self.n, "total": self._bar.total or 0})


@dataclass
class BuildContext:
    """Everything a step needs: configuration, store, run id, progress, per-build loaded objects, the
    fingerprints of the steps run so far, and ``backends`` (encoders, taggers, captioners loaded by name,
    which a caller may share between builds)."""

    config: Config
    store: ResultsStore
    run_id: str
    progress: Progress
    objects: dict = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)  # "stage scope" of steps computed in this build
    skipped: list[str] = field(default_factory=list)
    produced: set[tuple[str, str]] = field(default_factory=set)  # (stage, scope key) this build ran or kept
    fingerprints: dict[graph.StepKey, str] = field(default_factory=dict)  # (stage, scope) -> fingerprint
    backends: dict = field(default_factory=dict)


def code_version() -> str:
    """Package version + git commit of the engine (``+dirty`` with uncommitted changes), for provenance."""
    try:
        sha = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--", "and_engine"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", ""
    return f"{__version__}+{sha or 'nogit'}{'.dirty' if dirty else ''}"


def fingerprint_of(stage: str, scope: Mapping[str, Any], params: Mapping[str, Any], upstream: Sequence[str]) -> str:
    return stable_hash({"stage": stage, "scope": dict(scope), "params": dict(params), "upstream": list(upstream)})


def run_step(ctx: BuildContext, stage: str, scope: Mapping[str, Any], params: Mapping[str, Any],
             upstream: Sequence[str], compute: Callable[[], Tables]) -> str:
    """Compute and commit a step unless its fingerprint is unchanged -> the step's fingerprint."""
    fp = fingerprint_of(stage, scope, params, upstream)
    ctx.produced.add((stage, scope_key(scope)))
    ctx.fingerprints[(stage, graph.scope_of(scope))] = fp
    label = f"{stage} {' '.join(f'{k}={v}' for k, v in sorted(scope.items()))}".strip()
    if ctx.store.fingerprint(stage, scope) == fp:
        ctx.skipped.append(label)
        ctx.progress.report(skipped=len(ctx.skipped))
        return fp
    started = datetime.now(UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    ctx.progress.report(force=True, step=label, bar={})
    tables = compute()
    ctx.store.commit_step(ctx.run_id, stage, scope, params, fp, tables, started,
                          shared(ctx, "_code_version", code_version))
    ctx.executed.append(label)
    ctx.progress.report(force=True, step="", bar={}, computed=len(ctx.executed))
    ctx.progress.log(f"{label}: {sum(len(t) for t in tables.values())} rows in {time.perf_counter() - t0:.1f} s")
    return fp


def _stage_inputs(ctx: BuildContext, stage: str, scope: Mapping[str, Any], extra: Mapping[str, Any]
                  ) -> tuple[dict, list[str]]:
    """(params, upstream fingerprints) the graph declares for a step of ``stage``."""
    st = graph.STAGE[stage]
    missing = graph.missing_upstream(st, ctx.config, scope, ctx.fingerprints)
    if missing:
        raise KeyError(f"step {stage} {scope_key(scope)} needs the {', '.join(missing)} step(s) first "
                       f"(run the {', '.join(sorted({graph.STAGE[m].group for m in missing}))} steps)")
    params = {"config": graph.config_part(st, ctx.config, scope), **extra}
    upstream = [ctx.fingerprints[k] for k in graph.upstream_keys(st, ctx.config, scope, ctx.fingerprints)]
    return params, upstream


def run_stage(ctx: BuildContext, stage: str, scope: Mapping[str, Any], extra: Mapping[str, Any],
              compute: Callable[[], Tables]) -> str:
    """``run_step`` with the params and upstream the graph declares for ``stage`` -> the fingerprint."""
    params, upstream = _stage_inputs(ctx, stage, scope, extra)
    return run_step(ctx, stage, scope, params, upstream, compute)


def is_current(ctx: BuildContext, stage: str, scope: Mapping[str, Any], extra: Mapping[str, Any]) -> bool:
    """Whether ``run_stage`` with these arguments would skip the step (its committed fingerprint is the
    one it would get now); the LLM rounds plan only the prompts of steps that will run."""
    params, upstream = _stage_inputs(ctx, stage, scope, extra)
    return ctx.store.fingerprint(stage, scope) == fingerprint_of(stage, scope, params, upstream)


def shared(ctx: BuildContext, key: object, create: Callable[[], Any]) -> Any:
    """``create()`` once per build under ``key`` (models, encoders, backends are loaded once and reused)."""
    if key not in ctx.objects:
        ctx.objects[key] = create()
    return ctx.objects[key]


def backend(ctx: BuildContext, key: object, create: Callable[[], Any]) -> Any:
    """``create()`` once under ``key`` in ``ctx.backends``: for objects that depend on nothing but ``key``
    (an encoder, tagger or captioner by name), so that a caller may share them between builds."""
    if key not in ctx.backends:
        ctx.backends[key] = create()
    return ctx.backends[key]


def text_encoder(ctx: BuildContext, name: str):
    """The sentence / text encoder ``name``, one per build, shared by Modules A-C and the analyses (so
    texts embedded by one stage are memoised for the next)."""
    opts = {"device": ctx.config.device.text_encoders, "batch_size": ctx.config.device.text_batch_size}
    return backend(ctx, ("text_encoder", name), lambda: make("text_encoder", name, opts))


def probing_set(ctx: BuildContext) -> ProbingSet:
    """The configured probing set, decoded and validated once per build."""
    if "probing_set" not in ctx.objects:
        cfg = ctx.config.probing_set
        path = ctx.config.resolve(cfg.path)
        with ctx.progress.bar(count_entries(cfg, path), "checking probing set") as bar:
            ctx.objects["probing_set"] = open_probing_set(cfg, path, progress=bar)
    return ctx.objects["probing_set"]


def waveforms(ctx: BuildContext, sample_rate: int) -> np.ndarray:
    """(n_clips, n_samples) float32 waveforms at ``sample_rate``, clip_id order, cached per build."""
    key = ("waveforms", int(sample_rate))
    if key not in ctx.objects:
        ps = probing_set(ctx)
        with ctx.progress.bar(len(ps.clips), f"decoding clips at {sample_rate} Hz") as bar:
            ctx.objects[key] = ps.load_waveforms(sample_rate, ctx.config.probing_set.clip_seconds, progress=bar)
    return ctx.objects[key]
