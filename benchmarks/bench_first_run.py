"""Benchmark: a new user's first run, from a fresh clone to the app answering and to the full build.

For each revision (``--before REV`` first when given, then ``--rev``, default HEAD): clone the repository
into a temporary folder, run ``bash run.sh`` there as a user would, and record

* setup: until run.sh starts building (venv + packages; ~0 with ``--venv``, which links a ready virtual
  environment instead of installing one and makes the clone's ``scripts/setup.sh`` a no-op, so nothing is
  ever installed into the linked environment: it must already hold the clone's requirements);
* app answers: until ``/_stcore/health`` of the app answers;
* full build: until the build status file (``<database>.build.json``) says ``done`` (a revision without
  one builds everything before it starts the app: then it equals "app answers");

and the CPU seconds of the clone's build processes (sampled from ``/proc`` every 2 s: the work done, which a
loaded machine stretches much less than the wall time; until the app answers / in all), then print the
per-stage table of the clone's database (seconds per stage, from the ``steps`` table, and the
training time of each trained variant from its checkpoint's ``meta.json``) and the revisions side by side.

    python benchmarks/bench_first_run.py --venv /path/to/ready/.venv               # HEAD only
    python benchmarks/bench_first_run.py --venv .venv --before 14992ff --rev HEAD  # before / after, same run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUP_OF = {  # stage -> step group (as pipeline/graph.py declares; fixed here so old revisions report alike)
    "clips": "probe", "model": "models", "activations": "models", "extremes": "models",
    "activation_maps": "models", "captions": "describe", "summaries": "describe", "module_a": "dissect",
    "module_b": "dissect", "adjective_checks": "dissect", "module_c": "dissect", "module_a_icl": "dissect",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class _BuildCpu:
    """CPU seconds (user + system) of every ``and_engine build`` process running in ``clone``, sampled."""

    def __init__(self, clone: Path):
        self.clone, self.seen, self.stop = str(clone.resolve()), {}, threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self.stop.wait(2.0):
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    if os.readlink(proc / "cwd") != self.clone or b"and_engine\0build" not in \
                            (proc / "cmdline").read_bytes():
                        continue
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                    self.seen[proc.name] = (int(fields[11]) + int(fields[12])) / self.tick
                except OSError:
                    continue

    def total(self) -> float:
        return sum(self.seen.values())


def _stage_table(clone: Path, db: Path) -> list[tuple[str, str, float]]:
    """(group, stage, seconds) from the clone's database, plus training from the checkpoints' meta.json."""
    sys.path.insert(0, str(ROOT))
    from and_engine.store.results import ResultsStore

    with ResultsStore(db, read_only=True) as store:
        steps = store.read("steps", ["stage", "started_at", "finished_at"])
    seconds = (steps["finished_at"] - steps["started_at"]).dt.total_seconds().groupby(steps["stage"]).sum()
    out = [(GROUP_OF.get(stage, "analyses"), stage, float(sec)) for stage, sec in seconds.items()]
    for meta in sorted((clone / "data" / "cache" / "models").glob("*/meta.json")):
        out.append(("models", f"training {meta.parent.name.rsplit('-', 1)[0]}",
                    float(json.loads(meta.read_text()).get("train_seconds", 0.0))))
    order = ["probe", "models", "describe", "dissect", "analyses"]
    return sorted(out, key=lambda r: (order.index(r[0]), -r[2]))


def first_run(rev: str, venv: Path | None, config: str, timeout_s: float, keep: bool) -> dict:
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix=f"first-run-{sha[:8]}-"))
    clone = folder / "AND"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", sha], check=True)
    if venv is not None:  # a ready environment, never installed into: setup.sh does nothing in this clone
        if not (venv / "bin" / "python").is_file():
            raise SystemExit(f"{venv} is not a virtual environment")
        (clone / ".venv").symlink_to(venv)
        (clone / "scripts" / "setup.sh").write_text("echo 'setup skipped (bench_first_run --venv)'\n")
    port = _free_port()
    db = clone / "data" / "build" / "demo.duckdb"
    status = Path(str(db) + ".build.json")
    log = (folder / "run.log").open("w")
    marks: dict[str, float] = {}
    t0 = time.monotonic()
    cpu = _BuildCpu(clone)
    proc = subprocess.Popen(["bash", "run.sh", config], cwd=clone, env={**os.environ, "PORT": str(port)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def read() -> None:
        for line in proc.stdout:
            log.write(f"{time.monotonic() - t0:8.1f} {line}")
            log.flush()
            if line.startswith("==> building") and "setup" not in marks:
                marks["setup"] = time.monotonic() - t0

    threading.Thread(target=read, daemon=True).start()
    try:
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() - t0 > timeout_s:
                raise SystemExit(f"{rev}: run.sh ended or timed out before the app answered; see {folder / 'run.log'}")
            time.sleep(1.0)
        marks["app"] = time.monotonic() - t0
        marks["cpu_app"] = cpu.total()
        print(f"[{rev}] app answers after {marks['app'] / 60:.1f} min", flush=True)
        def finished() -> str | None:  # the background build's end (the core build's file says done too)
            if not status.is_file():
                return "done (before the app)"
            st = json.loads(status.read_text() or "{}")
            return st["state"] if st.get("state") == "failed" or "analyses" in st.get("finished_groups", []) else None

        while (state := finished()) is None:
            if time.monotonic() - t0 > timeout_s:
                raise SystemExit(f"{rev}: the build did not finish within {timeout_s:.0f} s")
            time.sleep(2.0)
        marks["full"] = time.monotonic() - t0 if status.is_file() else marks["app"]
        time.sleep(3.0)  # one more sample of the build's last seconds
        marks["cpu_full"] = cpu.total()
        print(f"[{rev}] full build {state} after {marks['full'] / 60:.1f} min", flush=True)
        table = _stage_table(clone, db)
    finally:
        cpu.stop.set()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return {"rev": rev, "sha": sha[:8], **marks, "stages": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", default="HEAD", help="the revision to measure (committed code only)")
    ap.add_argument("--before", help="also measure this revision first, for before / after in the same run")
    ap.add_argument("--venv", type=Path, help="link this ready virtual environment instead of installing one")
    ap.add_argument("--config", default="configs/demo.toml")
    ap.add_argument("--timeout-min", type=float, default=120.0)
    ap.add_argument("--keep", action="store_true", help="keep the clones (and their run.log) for inspection")
    args = ap.parse_args()
    venv = args.venv.resolve() if args.venv else None
    runs = [first_run(r, venv, args.config, args.timeout_min * 60, args.keep)
            for r in ([args.before] if args.before else []) + [args.rev]]
    for r in runs:
        print(f"\n{r['rev']} ({r['sha']}): per stage, seconds")
        for group, stage, sec in r["stages"]:
            print(f"  {group:<10}{stage:<40}{sec:>9.1f}")
    print(f"\n{'revision':<22}{'setup min':>11}{'app answers min':>17}{'full build min':>16}"
          f"{'build CPU min until app / in all':>34}")
    for r in runs:
        print(f"{r['rev'] + ' ' + r['sha']:<22}{r.get('setup', 0) / 60:>11.1f}{r['app'] / 60:>17.1f}"
              f"{r['full'] / 60:>16.1f}{r['cpu_app'] / 60:>24.1f} / {r['cpu_full'] / 60:.1f}")
    if len(runs) == 2:
        a, b = runs
        print(f"ratio (before / after): app answers {a['app'] / b['app']:.2f}x, "
              f"full build {a['full'] / b['full']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
