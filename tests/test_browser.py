"""Real browser: the app on a free localhost port over the fixture database, driven by Chromium + Playwright.

Setup (the lead's test command runs it): ``apt-get install -y chromium`` and
``npm --prefix tests/browser install``. Missing pieces make this test FAIL with that instruction.
Set ``AND_SCREENSHOTS=docs/screenshots`` to save the README screenshots from the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from and_engine.store.ratings import RatingsStore
from and_engine.store.results import ResultsStore

ROOT = Path(__file__).resolve().parent.parent
BROWSER = ROOT / "tests" / "browser"
SETUP = "run the browser setup: apt-get install -y chromium && npm --prefix tests/browser install"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not become healthy at {url}")


@pytest.mark.browser
@pytest.mark.slow
def test_browser_flows(app_db, tmp_path):
    missing = [what for what, ok in (("/usr/bin/chromium", Path("/usr/bin/chromium").exists()),
                                     ("node", shutil.which("node") is not None),
                                     ("tests/browser/node_modules/playwright-core",
                                      (BROWSER / "node_modules" / "playwright-core").is_dir())) if not ok]
    if missing:
        pytest.fail(f"browser test prerequisites missing: {', '.join(missing)}; {SETUP}")
    db = shutil.copyfile(app_db, tmp_path / "results.duckdb")  # the end of the test opens it as a writer
    ratings = tmp_path / "ratings.duckdb"
    port = _free_port()
    env = {**os.environ, "AND_EXPLORER_DB": str(db), "AND_EXPLORER_RATINGS": str(ratings),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, str(BROWSER / "serve_app.py"), str(port), "--tiny-model"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, server)
        shots = os.environ.get("AND_SCREENSHOTS", "")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
        flow = subprocess.run(["node", str(BROWSER / "flows.mjs")], cwd=BROWSER, capture_output=True, text=True,
                              timeout=420, env={**env, "BASE_URL": base, "USER_DATA_DIR": str(tmp_path / "chrome"),
                                                "SCREENSHOT_DIR": str(Path(shots).resolve()) if shots else ""})
        lines = [ln for ln in flow.stdout.splitlines() if ln.startswith("{")]
        assert flow.returncode == 0 and lines, f"browser flow failed:\n{flow.stdout}\n{flow.stderr}\n" + \
            (tmp_path / "server.log").read_text()[-3000:]
        found = json.loads(lines[-1])
        time.sleep(1.0)  # let the last script run finish
        ResultsStore(db).close()  # the idle app holds no lock: a build could write the database now
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server we started, by its PID (own process group)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    assert found["audio_players"] == 10 and found["audio_content_type"] == "audio/mpeg"  # compressed, not WAV
    assert found["quantile_rows"] == 10 and found["audio_players_with_quantiles"] == 20  # their players on demand
    # top-K + bottom-K + 10 quantile clips playable, the 10 top/bottom clips' images drawn, 5 with their maps
    assert found["audio_playable"] == 20 and found["clip_images"] == 10 and found["map_images"] == 5
    assert found["neuron_scores"].startswith("S_h scores: embedding AUC") and found["score_charts"] == 2
    assert int(found["pruned_on"]) > 0 and found["pruned_off"] == "0"
    # interactive charts are Vega-Lite (no 4.7 MB plotly bundle per tab); the Neuron page's histogram and the
    # Overview's charts are pictures (no Vega to load in a fresh tab), the histogram with its bars and a mark per
    # top-K / bottom-K clip
    assert found["neuron_charts"] == 0 and found["histogram_bars"] >= 10 and found["histogram_marks"] == 10
    assert found["overview_charts"] == 0 and found["pruning_charts"] == 2
    figures = found["overview_pictures"]
    assert len(figures) == 5 and "Figure 5" in figures[0] and "τ = 3 (Figure 6)" in figures[1], figures
    assert figures[2].startswith("top-20 adjectives of") and figures[3:] == [
        "median embedding AUC per layer, by explanation", f"embedding AUC of the neurons of {figures[4].split()[-1]}"]
    # query by sound: 3 neurons per layer, the fixture's SAE layer among the 4 (listed first: block1.conv.sae)
    assert found["sound_results"] == 12 and found["opened_from_sound"].startswith("tinynet/block1.conv")
    assert found["effect"].endswith(" of 12") and found["compare"] == "one model"
    saved = RatingsStore(ratings).ratings()
    assert len(saved) == 3 and sorted(saved["rating"]) == [2, 4, 5] and set(saved["rater"]) == {"browser-rater"}
