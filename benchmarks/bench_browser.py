"""Benchmark: what a person waits for, in a real browser: every page of the app, on the demo and paper-scale DBs.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_browser.py [--demo-db data/build/demo.duckdb]
        [--out /tmp/bench_browser] [--reuse] [--runs 3] [--only demo|paper]

For each database (a copy of the demo build; the synthetic 55,346-neuron x 2,000-clip database of
``bench_app.build_paper_scale_db``, written into ``--out`` unless ``--reuse`` finds it there) this starts
``streamlit run app.py`` on a free localhost port and drives headless Chromium (playwright-core from
``tests/browser/node_modules``, as the browser test; ``benchmarks/browser_timing.mjs``) through every page:
one first visit after the server start, then ``--runs`` visits (each a new tab of one browser, so the browser's
HTTP cache is warm, as for a person who has opened the app before). Every Neuron visit opens a neuron none of
whose 10 clips was shown before in that server (no per-clip cache helps); Human evaluation is timed when it
opens and after a rater name is entered (its 5 players). Times are ms from navigation start:

* main: the page's first data element is visible (Overview: the metrics; Neuron: the neuron's heading and
  its S_h / S_l summaries; Concepts: the adjective chart; Pruning: the "neurons pruned" metric or the
  reason live pruning is unavailable; Human evaluation: the rater box, after a name: description 1);
* complete: Streamlit idle (script finished, nothing stale) and everything drawn: every plotly chart,
  image and dataframe rendered, every audio player ready to play (readyState >= 3), the expected players.

Prints one row per (database, page): the first visit, then the median and max of the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from and_engine.explorer import live, media, queries  # noqa: E402
from and_engine.stages.clip_media import clip_media_rows  # noqa: E402
from and_engine.store.results import ResultsStore  # noqa: E402

PLAYWRIGHT = ROOT / "tests" / "browser" / "node_modules" / "playwright-core"
TIMING = ROOT / "benchmarks" / "browser_timing.mjs"
PAGES = ("overview", "neuron", "concepts", "pruning", "human_eval")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_app(db: Path, ratings: Path, log: Path, app_root: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` of ``app_root`` over ``db`` on a free port (own process group) -> (process, URL)."""
    port = _free_port()
    env = {**os.environ, "AND_EXPLORER_DB": str(db), "AND_EXPLORER_RATINGS": str(ratings), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_root / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=app_root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.3)
    _stop(proc)
    raise TimeoutError(f"streamlit did not answer at {base}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server this script started: its own process group, by PID."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def ensure_clip_media(db: Path) -> bool:
    """Fill ``clip_media`` of a database built before that stage (as a build of this code would: the stage's
    function on every clip at every model's sample rate) -> whether it had to."""
    with ResultsStore(db) as store:  # a writable copy: opening it creates the table if the database predates it
        if store.count("clip_media"):
            return False
        cfg = queries.run_config(store)
        clips = queries.clips(store).reset_index()
        root, seconds = live.audio_root(cfg), cfg.probing_set.clip_seconds
        parts = []
        for sr in sorted({int(r) for r in queries.models(store)["sample_rate"]}):
            waves = np.stack([media.load_clip(root, path, sr, seconds) for path in clips["rel_path"]])
            parts.append(clip_media_rows(waves, clips["clip_id"].to_numpy(), sr))
        store.commit_step("bench", "clip_media", {}, {"filled_by": "bench_browser"}, "bench",
                          {"clip_media": pd.concat(parts, ignore_index=True)}, datetime.now(), "bench")
    return True


def fresh_neurons(db: Path, n: int, seed: int = 0) -> list[tuple[str, str, int]]:
    """``n`` neurons of a layer that keeps time x frequency maps whose 10 clips are pairwise disjoint."""
    with ResultsStore(db, read_only=True) as store:
        layers = store.query_df('SELECT model, layer, n_neurons FROM "layers" WHERE map_freq > 0 '
                                'ORDER BY model, layer_index LIMIT 1')
        model, layer, n_neurons = layers.iloc[0]
        rng = np.random.default_rng(seed)
        seen: set[int] = set()
        out = []
        for neuron in rng.permutation(int(n_neurons))[:400]:
            row = store.read("extremes", ["topk_clip_ids", "bottomk_clip_ids"], model=model, layer=layer,
                             neuron=int(neuron)).iloc[0]
            clips = {int(c) for c in [*row["topk_clip_ids"], *row["bottomk_clip_ids"]]}
            if not clips & seen:
                seen |= clips
                out.append((str(model), str(layer), int(neuron)))
            if len(out) == n:
                return out
    raise RuntimeError(f"fewer than {n} neurons of {model}/{layer} with disjoint clips")


def visits(db: Path, runs: int) -> list[dict]:
    """The first visit of every page, then ``runs`` visits each (the browser script's VISITS)."""
    neurons = fresh_neurons(db, runs + 1)
    out = []
    for page in PAGES:
        for i in range(runs + 1):
            v = {"name": page, "path": f"/{page}", "run": i, "expect": {}}
            if page == "neuron":
                model, layer, neuron = neurons[i]
                v["path"] = f"/neuron?model={model}&layer={layer}&neuron={neuron}"
                v["expect"] = {"audio": 10}
            elif page == "overview":
                v["expect"] = {"text": "Top-20 adjectives"}
            elif page == "human_eval":
                v["rater"], v["rated_expect"] = f"bench-{i}", {"audio": 5, "text": "Description 3:"}
            out.append(v)
    return out


def run_browser(db: Path, out: Path, runs: int, app_root: Path = ROOT) -> list[dict]:
    """Start the app of ``app_root`` over ``db``, time every visit in Chromium -> one dict per visit."""
    if not PLAYWRIGHT.is_dir() or not Path("/usr/bin/chromium").exists():
        raise SystemExit("needs the browser setup: apt-get install -y chromium && npm --prefix tests/browser install")
    ratings = out / f"ratings_{db.stem}.duckdb"
    ratings.unlink(missing_ok=True)
    proc, base = _start_app(db, ratings, out / f"server_{db.stem}.log", app_root)
    try:
        plan = visits(db, runs)
        env = {**os.environ, "BASE_URL": base, "VISITS": json.dumps(plan), "PLAYWRIGHT_DIR": str(PLAYWRIGHT)}
        res = subprocess.run(["node", str(TIMING)], env=env, capture_output=True, text=True, timeout=1800)
    finally:
        _stop(proc)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode or len(rows) != len(plan):
        raise RuntimeError(f"browser run failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    for row, v in zip(rows, plan):
        row["run"] = v["run"]
    return rows


def table(name: str, rows: list[dict]) -> list[str]:
    """Rows of one database -> printed lines: first visit, median / max of the runs (main, complete)."""
    lines = []
    for page in [*PAGES, "human_eval+rater"]:
        key = "human_eval" if page.endswith("+rater") else page
        prefix = "rated_" if page.endswith("+rater") else ""
        got = [r for r in rows if r["name"] == key]
        errors = [r["error"] for r in got if "error" in r]
        if errors:
            lines.append(f"{name:<7}{page:<18}ERROR {errors[0]}")
            continue
        first, rest = got[0], got[1:]
        main = [r[f"{prefix}main_ms"] / 1000 for r in rest]
        done = [r[f"{prefix}complete_ms"] / 1000 for r in rest]
        last = rest[-1]
        f_main, f_done = first[prefix + "main_ms"] / 1000, first[prefix + "complete_ms"] / 1000
        med_main, med_done = statistics.median(main), statistics.median(done)
        lines.append(f"{name:<7}{page:<18}{f_main:>6.2f} /{f_done:>6.2f}"
                     f"{med_main:>9.2f} /{max(main):>5.2f}{med_done:>9.2f} /{max(done):>5.2f}"
                     f"{last['audio']:>6}{last['images']:>6}{last['plots']:>6}{last['ws_kb']:>8}{last['http_kb']:>8}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo-db", default=str(ROOT / "data" / "build" / "demo.duckdb"))
    ap.add_argument("--out", default="/tmp/bench_browser")
    ap.add_argument("--reuse", action="store_true", help="reuse the paper-scale DB in --out")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=("demo", "paper"), default=None)
    ap.add_argument("--before", default="", help="also time the app of another checkout (the code before a change, "
                    "e.g. `git archive <commit> | tar -x -C DIR`) on the same databases, alternating with this one")
    ap.add_argument("--no-media", action="store_true", help="leave a demo DB without clip_media as it is (the app "
                    "then decodes clips live, as for a database built before that stage)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dbs = {}
    if args.only in (None, "demo"):
        dbs["demo"] = Path(shutil.copyfile(args.demo_db, out / "demo.duckdb"))  # never write the original
        if not args.no_media and ensure_clip_media(dbs["demo"]):
            print(f"{args.demo_db} predates the clip_media stage: filled it in the copy with the stage's function")
    if args.only in (None, "paper"):
        paper = out / "paper.duckdb"
        if not (args.reuse and paper.exists()):
            from benchmarks.bench_app import build_paper_scale_db

            paper.unlink(missing_ok=True)
            t0 = time.perf_counter()
            build_paper_scale_db(paper)
            print(f"paper-scale DB: {paper.stat().st_size / 1e9:.2f} GB written in {time.perf_counter() - t0:.0f} s")
        dbs["paper"] = paper
    apps = {"after": ROOT, **({"before": Path(args.before).resolve()} if args.before else {})}
    load = os.getloadavg()[0]
    results = {(app, name): run_browser(db, out, args.runs, root) for name, db in dbs.items()
               for app, root in reversed(apps.items())}
    (out / "visits.json").write_text(json.dumps({f"{a} {d}": r for (a, d), r in results.items()}, indent=1))
    print(f"seconds from navigation start; first visit after the server start, then median / max of {args.runs} "
          f"runs (load average {load:.1f} -> {os.getloadavg()[0]:.1f})")
    for app, root in apps.items():
        print(f"{app}: the app of {root}")
        print(f"{'db':<7}{'page':<18}{'first main/done':>15}{'main med/max':>16}{'done med/max':>16}"
              f"{'audio':>6}{'imgs':>6}{'plots':>6}{'ws KB':>8}{'http KB':>8}")
        for name in dbs:
            print("\n".join(table(name, results[(app, name)])))
    if args.before:
        print("after / before, median time to complete: " + ", ".join(
            f"{name} {page} {ratio:.2f}" for name in dbs for page, ratio in
            _ratios(results[("after", name)], results[("before", name)]).items()))


def _ratios(after: list[dict], before: list[dict]) -> dict[str, float]:
    """page -> median complete time of ``after`` / ``before`` (pages with an error in either are left out)."""
    out = {}
    for page in PAGES:
        a, b = ([r.get("complete_ms") for r in rows if r["name"] == page][1:] for rows in (after, before))
        if a and b and None not in a and None not in b:
            out[page] = statistics.median(a) / statistics.median(b)
    return out


if __name__ == "__main__":
    main()
