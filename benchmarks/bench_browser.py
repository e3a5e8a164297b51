"""Benchmark: what a person waits for, in a real browser: every page of the app, on the demo and paper-scale DBs.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_browser.py [--demo-db data/build/demo.duckdb]
        [--out /tmp/bench_browser] [--reuse] [--runs 3] [--only demo|paper] [--before DIR] [--timeout 120]

For each database (a copy of the demo build; the synthetic 55,346-neuron x 2,000-clip database of
``bench_app.build_paper_scale_db``, written into ``--out`` unless ``--reuse`` finds it there) this starts
``streamlit run app.py`` on a free localhost port (with ``--before DIR``: also the app of another checkout, e.g.
``git archive main | tar -x -C DIR``, on its own port) and drives one headless Chromium (playwright-core from
``tests/browser/node_modules``, as the browser test; ``benchmarks/browser_timing.mjs``) through every page: the
first visit after the server start, then ``--runs`` visits, each in a new tab (the browser's profile is a new
folder on disk, so after the first visits its HTTP cache and compiled-code cache are warm, as for a person who has
opened the app before; the page's JavaScript is loaded and run anew, as for a link opened in a new tab;
``--incognito``: an in-memory context without the code cache, as this benchmark used before 2026-11-30), the
apps' visits alternating so that both meet the same load. The i-th Neuron visit opens the same neuron in every
app, one whose 10 top-K / bottom-K clips no earlier visit showed (no per-clip cache helps;
its 10 activation-quantile clips are drawn per neuron and may repeat); it is then
timed again after the next neuron's number is typed into the sidebar (``neuron+next``: a person's next neuron in
the same tab, the JavaScript already loaded). Human evaluation is timed when it opens and after a rater name is
entered (``human_eval+rater``: its 5 players). Then the rest of app.py's navigation and the Neuron page's views
that compute on demand: Query by sound when it opens and after the i-th probing-set file (every 7th of
``data/demo/audio``, a new one per run: the query is cached per file) is given to its uploader
(``by_sound+clip``: the model runs on the CPU; the first visit also loads the model); Compare models; and, on a
Neuron page of another fresh neuron per run (its opening not a row), ``neuron+effect`` (the "measure it on the
held-out clips" toggle switched on: the model runs the held-out clips with the neuron zeroed) and
``neuron+export`` (the "Download this neuron" button: the export is written when clicked). There is no Layer
or Export page in the navigation. Times are seconds from navigation start (from the key press, upload or click
for the step rows):

* main: the page's first data element is visible (Overview: the metrics; Neuron: the neuron's heading and
  its S_h summary; Concepts: the counts of adjectives and neurons above the adjective chart (apps before it: the chart
  drawn); Pruning: the "neurons pruned" metric or the reason live
  pruning is unavailable; Human evaluation: the rater box, after a name: description 1; Query by sound: the
  file uploader, after a file: the first neuron's percentile or why the file or the model cannot be used;
  Compare models: the count of A's neurons with a partner in B (apps before it: the partner heatmap drawn), or why
  there is nothing to compare; Effect on the output: its
  "predictions changed" metric or why it is unavailable; export: the download's response arrived);
* complete: Streamlit idle (script finished, nothing stale) and everything drawn: every chart, image and visible
  dataframe rendered, every audio player ready to play (readyState >= 3), the expected players / images / charts
  (Query by sound with a file: its playback; Effect on the output: the logit-change chart; export: the whole
  file saved).

``cpu s`` is the CPU time the browser's processes and the app server used for a visit (from /proc): unlike the
wall times it does not grow with other jobs on the machine. Prints one row per (database, app, page): the first
visit, then the median and max of the runs, and with ``--before`` the after / before ratios of the medians.
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
PAGES = ("overview", "neuron", "concepts", "pruning", "human_eval", "by_sound", "compare", "neuron_effect")
SOUND_CLIPS = ROOT / "data" / "demo" / "audio"  # Query by sound's uploads: probing-set files, one per run
EFFECT_TOGGLE = "measure it on the held-out clips (runs the model)"


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


def fresh_neurons(db: Path, n_pairs: int, seed: int = 0) -> list[tuple[tuple[str, str, int], tuple[str, str, int]]]:
    """``n_pairs`` pairs of neurons, both of a pair in one layer that keeps time x frequency maps, whose 10 clips
    are pairwise disjoint over all the neurons returned (tried in a seeded random order, layer by layer)."""
    with ResultsStore(db, read_only=True) as store:
        layers = store.query_df('SELECT model, layer, n_neurons FROM "layers" WHERE map_freq > 0 '
                                'ORDER BY model, layer_index')
        rng = np.random.default_rng(seed)
        seen: set[int] = set()
        out = []
        for model, layer, n_neurons in layers.itertuples(index=False):
            ext = store.read("extremes", ["neuron", "topk_clip_ids", "bottomk_clip_ids"], model=model, layer=layer,
                             neuron=[int(i) for i in rng.permutation(int(n_neurons))[:300]])
            found = []
            for r in ext.sample(frac=1.0, random_state=seed).itertuples():
                clips = {int(c) for c in [*r.topk_clip_ids, *r.bottomk_clip_ids]}
                if not clips & seen:
                    seen |= clips
                    found.append((str(model), str(layer), int(r.neuron)))
            out += [(found[i], found[i + 1]) for i in range(0, len(found) - 1, 2)]
            if len(out) >= n_pairs:
                return out[:n_pairs]
    raise RuntimeError(f"only {len(out)} pairs of neurons with disjoint clips in {db}, {n_pairs} needed: "
                       f"use --runs {len(out) - 1} or fewer")


def _neuron_expect(app_root: Path) -> dict[str, int]:
    """What the Neuron page of an app draws: 10 players (top-K, bottom-K) and, in apps that show the quantile
    clips' players with the page (from 2026-11-29 until they came on demand, 2026-11-30), 10 more (5 activation
    quantiles x 2 clips); one image per top/bottom clip (apps with the clip_media stage) and the histogram (an image
    since 2026-11-30, a Vega-Lite chart before), or the histogram and one plotly figure per clip (before clip_media)."""
    views = app_root / "pages" / "_neuron_views.py"
    audio = 20 if views.is_file() and "nr_quantile_play" not in views.read_text() else 10
    if "st.image(rest.histogram" in (app_root / "pages" / "neuron.py").read_text():
        return {"audio": audio, "charts": 0, "images": 11}  # the histogram a picture too (since 2026-11-30)
    if (app_root / "and_engine" / "stages" / "clip_media.py").is_file():
        return {"audio": audio, "charts": 1, "images": 10}
    return {"audio": audio, "charts": 11}


def visits(db: Path, runs: int, apps: dict[str, Path], pages: tuple[str, ...] = PAGES) -> list[dict]:
    """The first visit of every page, then ``runs`` visits each, per app, alternating between the apps (the
    browser script's VISITS without base / server_pid). The i-th Neuron visit of every app opens the same neuron,
    and its rerun (the next neuron typed into the sidebar) another: neurons whose 10 clips no earlier visit of
    that app showed (each app is its own server, so no per-clip cache helps)."""
    neurons = fresh_neurons(db, runs + 1)
    effect_neurons = fresh_neurons(db, runs + 1, seed=1)  # the effect's cache is per neuron: a new one per run
    clips = sorted(SOUND_CLIPS.glob("*/*.*"))[::7]  # a new clip per run (the query is cached per file)
    out = []
    for page in [p for p in PAGES if p in pages]:
        for i in range(runs + 1):
            for app in list(apps) if i % 2 == 0 else list(apps)[::-1]:
                v = {"name": page, "app": app, "path": f"/{page}", "run": i, "expect": {}}
                if page == "neuron":
                    (model, layer, neuron), (_, _, rerun) = neurons[i]
                    v["path"] = f"/neuron?model={model}&layer={layer}&neuron={neuron}"
                    v["expect"] = {**_neuron_expect(apps[app]), "neuron": neuron}
                    v["steps"] = [{"prefix": "rerun_", "kind": "neuron", "arg": rerun, "expect": _neuron_expect(
                        apps[app]), "act": {"fill": r"^Neuron \(0\.\.", "value": rerun}}]
                elif page == "overview":
                    v["expect"] = {"text": "Top-20 adjectives"}
                elif page == "human_eval":
                    v["steps"] = [{"prefix": "rerun_", "kind": "rated", "act": {"fill": "Your rater name",
                                   "value": f"bench-{i}"}, "expect": {"audio": 5, "text": "Description 3:"}}]
                elif page == "by_sound":  # then the i-th clip uploaded: the page plays it back
                    v["steps"] = [{"prefix": "upload_", "kind": "sound_result", "expect": {"audio": 1},
                                   "act": {"upload": str(clips[i % len(clips)])}}]
                elif page == "neuron_effect":  # the Neuron page (not timed as a row), its effect switched on, its
                    model, layer, neuron = effect_neurons[i][0]  # download clicked
                    v["path"] = f"/neuron?model={model}&layer={layer}&neuron={neuron}"
                    v["expect"] = {**_neuron_expect(apps[app]), "neuron": neuron}
                    v["steps"] = [{"prefix": "effect_", "kind": "effect", "act": {"click": EFFECT_TOGGLE},
                                   "expect": {"chart_title": "change of each class's logit"}},
                                  {"prefix": "export_", "act": {"download": "Download this neuron"}}]
                out.append(v)
    return out


def run_browser(db: Path, out: Path, runs: int, apps: dict[str, Path], timeout_s: int = 120,
                pages: tuple[str, ...] = PAGES, incognito: bool = False) -> list[dict]:
    """Start the app of every ``apps`` root over ``db`` (one server each, own ratings DB), time every visit in one
    Chromium, alternating between the apps -> one dict per visit. The browser profile is a new folder in ``out``
    (kept on disk, as a person's: the compiled-code cache too), or with ``incognito`` an in-memory context."""
    if not PLAYWRIGHT.is_dir() or not Path("/usr/bin/chromium").exists():
        raise SystemExit("needs the browser setup: apt-get install -y chromium && npm --prefix tests/browser install")
    servers = {}
    try:
        for app, root in apps.items():
            ratings = out / f"ratings_{db.stem}_{app}.duckdb"
            ratings.unlink(missing_ok=True)
            servers[app] = _start_app(db, ratings, out / f"server_{db.stem}_{app}.log", root)
        plan = visits(db, runs, apps, pages)
        for v in plan:
            proc, base = servers[v["app"]]
            v["base"], v["server_pid"] = base, proc.pid
        env = {**os.environ, "VISITS": json.dumps(plan), "PLAYWRIGHT_DIR": str(PLAYWRIGHT),
               "TIMEOUT_MS": str(timeout_s * 1000)}
        env.pop("PROFILE_DIR", None)
        if not incognito:
            profile = out / f"chromium-profile-{db.stem}"
            shutil.rmtree(profile, ignore_errors=True)  # new for every run: warmed by its first visits only
            env["PROFILE_DIR"] = str(profile)
        res = subprocess.run(["node", str(TIMING)], env=env, capture_output=True, text=True, timeout=7200)
    finally:
        for proc, _ in servers.values():
            _stop(proc)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode or len(rows) != len(plan):
        raise RuntimeError(f"browser run failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    for row, v in zip(rows, plan):
        row["run"] = v["run"]
    return rows


# (row label, visit, step prefix): the original seven rows, then the views added for issue #15
ROWS = [(page, page, "") for page in PAGES[:5]] + [
    ("neuron+next", "neuron", "rerun_"), ("human_eval+rater", "human_eval", "rerun_"),
    ("by_sound", "by_sound", ""), ("by_sound+clip", "by_sound", "upload_"), ("compare", "compare", ""),
    ("neuron+effect", "neuron_effect", "effect_"), ("neuron+export", "neuron_effect", "export_")]
LEGACY = ("", "rerun_")  # the original rows' steps: their error, missing parts and counts are the visit's
HEADER = (f"{'db':<7}{'app':<8}{'page':<18}{'first main/done':>16}{'main med/max':>14}{'done med/max':>14}"
          f"{'cpu s':>7}{'audio':>6}{'imgs':>6}{'charts':>7}{'ws KB':>7}{'http KB':>8}")


def _runs(rows: list[dict], page: str, prefix: str) -> tuple[dict, list[dict]] | str:
    """A page's first visit and the later runs, or the first error (of the visit, or of the step ``prefix``)."""
    got = [r for r in rows if r["name"] == page]
    own = "" if prefix in LEGACY else prefix
    errors = [f"{r[key]} (not ready: {', '.join(r.get(own + 'missing', [])) or '?'})" for r in got
              for key in dict.fromkeys(("error", own + "error")) if key in r]
    return errors[0] if errors else (got[0], got[1:])


def table(name: str, app: str, rows: list[dict]) -> list[str]:
    """Visits of one app on one database -> printed lines: the first visit after the server start, median / max
    of the later runs (main, complete: seconds), median CPU seconds of a run (browser + server), last run's
    counts (players, images, plotly charts, KB over the websocket / over HTTP for media and static files)."""
    lines = []
    for label, page, prefix in ROWS:
        if not any(r["name"] == page for r in rows):  # a page not visited (a plan of fewer pages)
            continue
        got = _runs(rows, page, prefix)
        if isinstance(got, str):
            lines.append(f"{name:<7}{app:<8}{label:<18}ERROR {got}")
            continue
        first, rest = got
        if f"{prefix}main_ms" not in first:
            continue
        main, done = ([r[f"{prefix}{k}_ms"] / 1000 for r in rest] for k in ("main", "complete"))
        cpu = statistics.median(r[f"{prefix}cpu_browser_s"] + r[f"{prefix}cpu_server_s"] for r in rest)
        own = "" if prefix in LEGACY else prefix  # the counts after the step
        last = {k: rest[-1].get(own + k, "-") for k in ("audio", "images", "charts", "ws_kb", "http_kb")}
        lines.append(f"{name:<7}{app:<8}{label:<18}{first[prefix + 'main_ms'] / 1000:>7.2f} /"
                     f"{first[prefix + 'complete_ms'] / 1000:>6.2f}{statistics.median(main):>7.2f} /{max(main):>5.2f}"
                     f"{statistics.median(done):>8.2f} /{max(done):>5.2f}{cpu:>7.2f}"
                     f"{last['audio']:>6}{last['images']:>6}{last['charts']:>7}{last['ws_kb']:>7}{last['http_kb']:>8}"
                     + (f"  unavailable: {why}" if (why := rest[-1].get(prefix + "unavailable")) else ""))
    return lines


def ratios(after: list[dict], before: list[dict]) -> list[str]:
    """-> per page: after / before of the median main, complete and CPU seconds of the runs (pages with an error
    in either app, or not visited (``--pages``), left out)."""
    out = []
    for label, page, prefix in ROWS:
        if not any(r["name"] == page for r in after) or not any(r["name"] == page for r in before):
            continue  # a page not visited (--pages)
        a, b = _runs(after, page, prefix), _runs(before, page, prefix)
        if isinstance(a, str) or isinstance(b, str) or f"{prefix}main_ms" not in a[0]:
            continue
        med = [[statistics.median(sum(r[prefix + k] for k in keys) for r in runs[1]) for runs in (a, b)]
               for keys in (["main_ms"], ["complete_ms"], ["cpu_browser_s", "cpu_server_s"])]
        out.append(f"{label} {'/'.join(f'{x / y:.2f}' if y else '-' for x, y in med)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo-db", default=str(ROOT / "data" / "build" / "demo.duckdb"))
    ap.add_argument("--out", default="/tmp/bench_browser")
    ap.add_argument("--reuse", action="store_true", help="reuse the paper-scale DB in --out")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=120, help="seconds a visit may take before it counts as failed")
    ap.add_argument("--only", choices=("demo", "paper"), default=None)
    ap.add_argument("--pages", default=",".join(PAGES), help=f"visit only these pages (of {', '.join(PAGES)})")
    ap.add_argument("--before", default="", help="also time the app of another checkout (the code before a change, "
                    "e.g. `git archive <commit> | tar -x -C DIR`) on the same databases, its visits alternating "
                    "with this one's; link its data/demo and data/cache to this checkout's (extracted files get new "
                    "times, so the probing set's fingerprint and with it the checkpoint key would differ)")
    ap.add_argument("--incognito", action="store_true", help="an in-memory browser context (as this benchmark used "
                    "before 2026-11-30): no compiled-code cache on disk, so every tab compiles Streamlit's JavaScript "
                    "anew (~0.3-0.5 s more per fresh tab than a person's browser profile)")
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
        with ResultsStore(paper) as store:  # tables added to the schema since it was written (as a build would)
            packed = store.query_df("SELECT 1 FROM pragma_storage_info('clip_media') WHERE segment_type = 'BLOB' "
                                    "AND compression <> 'Uncompressed'")
        if not packed.empty:  # DuckDB keeps a column's compression: only a new database gets today's schema
            print(f"WARNING: {paper} stores clip_media's blobs compressed (written before they were stored "
                  "uncompressed): every Neuron view reads ~0.3-0.6 s more than a build of this code would; run "
                  "without --reuse to write it anew")
        dbs["paper"] = paper
    apps = {"after": ROOT, **({"before": Path(args.before).resolve()} if args.before else {})}
    load = os.getloadavg()[0]
    pages = tuple(args.pages.split(","))
    results = {name: run_browser(db, out, args.runs, apps, args.timeout, pages, args.incognito)
               for name, db in dbs.items()}
    (out / "visits.json").write_text(json.dumps(results, indent=1))
    print(f"seconds from navigation start (rerun rows: from the key press); first visit after the server start, "
          f"then median / max of {args.runs} runs (load average {load:.1f} -> {os.getloadavg()[0]:.1f}); "
          + ", ".join(f"{app}: the app of {root}" for app, root in apps.items()))
    print(HEADER)
    for name in dbs:
        for app in apps:
            print("\n".join(table(name, app, [r for r in results[name] if r["app"] == app])))
    if args.before:
        for name in dbs:
            by = {app: [r for r in results[name] if r["app"] == app] for app in apps}
            print(f"after / before, {name}, median main / complete / CPU: " + ", ".join(ratios(by["after"],
                                                                                               by["before"])))


if __name__ == "__main__":
    main()
