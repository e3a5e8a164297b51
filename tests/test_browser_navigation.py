"""The app's addresses in a real browser (Chromium + Playwright, as tests/test_browser.py) and its file watcher.

/overview after / showed Streamlit's "Page not found" dialog (the default page is served only at the root); the
server watched .venv and logged thousands of "Inotify queue overflowed" lines. The browser part FAILS with the
setup instruction when Chromium or playwright-core is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from test_browser import BROWSER, ROOT, SETUP, _free_port, _wait_healthy

WATCHER = """
from streamlit import config
from streamlit.watcher.path_watcher import get_default_path_watcher_class
config.get_config_options(force_reparse=True)
print(get_default_path_watcher_class().__name__, config.get_option("server.folderWatchBlacklist"))
"""


def test_the_served_app_watches_no_files_and_never_venv():
    """Streamlit's own config loader, from the project root as `streamlit run app.py` runs it."""
    out = subprocess.run([sys.executable, "-c", WATCHER], cwd=ROOT, capture_output=True, text=True, check=True)
    watcher, blacklist = out.stdout.split(" ", 1)
    assert watcher == "NoOpPathWatcher" and ".venv" in blacklist


@pytest.mark.browser
@pytest.mark.slow
def test_every_address_opens_its_page_without_page_not_found(app_db, tmp_path):
    if not (shutil.which("node") and os.path.exists("/usr/bin/chromium")
            and (BROWSER / "node_modules" / "playwright-core").is_dir()):
        pytest.fail(f"browser test prerequisites missing; {SETUP}")
    port = _free_port()
    env = {**os.environ, "AND_EXPLORER_DB": str(app_db), "AND_EXPLORER_RATINGS": str(tmp_path / "ratings.duckdb"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, str(BROWSER / "serve_app.py"), str(port)], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, server)
            flow = subprocess.run(["node", str(BROWSER / "navigation.mjs")], cwd=BROWSER, capture_output=True,
                                  text=True, timeout=300,
                                  env={**env, "BASE_URL": base, "USER_DATA_DIR": str(tmp_path / "chrome")})
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server we started, by its PID (own process group)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    lines = [ln for ln in flow.stdout.splitlines() if ln.startswith("{")]
    assert flow.returncode == 0 and lines, f"browser flow failed:\n{flow.stdout}\n{flow.stderr}\n" \
        + log_path.read_text()[-3000:]
    found = json.loads(lines[-1])
    assert [v["url"] for v in found["visits"]] == ["/overview", "/overview", "/overview", "/concepts"]
    assert found["clicked"] == "/overview"
    assert "inotify" not in log_path.read_text().lower()
