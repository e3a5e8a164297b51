"""benchmarks/bench_browser.py's table: every view of the navigation gets a row; a failed step of a visit (effect,
export, upload) marks only its own row, and a step's row shows the counts taken after that step."""

from __future__ import annotations

from benchmarks.bench_browser import ROWS, table

COUNTS = {"audio": 20, "images": 10, "charts": 1, "ws_kb": 100, "http_kb": 900}


def _visit(name: str, run: int, **extra) -> dict:
    return {"name": name, "app": "after", "run": run, "main_ms": 1000, "complete_ms": 2000, "cpu_browser_s": 1.0,
            "cpu_server_s": 0.5, **COUNTS, **extra}


def _step(prefix: str, **counts) -> dict:
    return {f"{prefix}main_ms": 300, f"{prefix}complete_ms": 700, f"{prefix}cpu_browser_s": 0.2,
            f"{prefix}cpu_server_s": 0.1, **{prefix + k: v for k, v in counts.items()}}


def test_every_view_of_the_navigation_has_a_row():
    views = {page for _, page, _ in ROWS}
    assert {"overview", "neuron", "concepts", "pruning", "human_eval", "by_sound", "compare"} <= views
    labels = [label for label, _, _ in ROWS]
    assert labels[:7] == ["overview", "neuron", "concepts", "pruning", "human_eval", "neuron+next",
                          "human_eval+rater"]  # the original rows first, as before
    assert {"by_sound+clip", "neuron+effect", "neuron+export"} <= set(labels)


def test_a_failed_step_marks_only_its_row_and_a_step_row_shows_its_own_counts():
    effect = {**_step("effect_", audio=20, images=10, charts=2, ws_kb=130, http_kb=950),
              "export_error": 'not run: step "effect_" failed'}
    rows = [_visit("neuron_effect", 0, **effect), _visit("neuron_effect", 1, **effect),
            _visit("by_sound", 0, upload_error="Timeout 120000ms exceeded.", upload_missing=["0/1 players"]),
            _visit("by_sound", 1, **_step("upload_", audio=1, images=6, charts=0, ws_kb=40, http_kb=700)),
            _visit("neuron", 0, **_step("rerun_")), _visit("neuron", 1, **_step("rerun_"))]
    lines = {line.split()[2]: line for line in table("demo", "after", rows)}
    assert lines["by_sound"].split()[3:5] == ["1.00", "/"] and "ERROR" not in lines["by_sound"]
    assert "ERROR Timeout 120000ms exceeded. (not ready: 0/1 players)" in lines["by_sound+clip"]
    assert lines["neuron+effect"].split()[-5:] == ["20", "10", "2", "130", "950"]  # after the toggle, not the visit
    assert "ERROR not run" in lines["neuron+export"]
    assert lines["neuron"].split()[-5:] == ["20", "10", "1", "100", "900"] and "ERROR" not in lines["neuron+next"]
    assert "neuron_effect" not in lines  # the effect visit's own opening is no row


def test_an_error_of_a_visit_marks_every_row_of_that_visit():
    rows = [_visit("human_eval", 0, error="Timeout", missing=["script running"]), _visit("human_eval", 1)]
    lines = {line.split()[2]: line for line in table("demo", "after", rows)}
    assert "ERROR Timeout (not ready: script running)" in lines["human_eval"]
    assert "ERROR Timeout" in lines["human_eval+rater"]


def test_a_live_view_that_cannot_run_says_why_in_its_row():
    why = "Querying ast-synthetic is unavailable: no checkpoint"
    rows = [_visit("by_sound", run, **_step("upload_", audio=0, images=0, charts=0, ws_kb=7, http_kb=532),
                   upload_unavailable=why) for run in (0, 1)]
    lines = {line.split()[2]: line for line in table("paper", "after", rows)}
    assert lines["by_sound+clip"].endswith(f"  unavailable: {why}") and "unavailable" not in lines["by_sound"]


def test_ratios_cover_the_pages_visited_by_both_apps_only():
    from benchmarks.bench_browser import ratios

    after = [_visit("overview", run, main_ms=500) for run in range(3)]
    before = [{**v, "app": "before", "main_ms": 1000} for v in after] + [_visit("compare", r) for r in range(3)]
    assert ratios(after, before) == ["overview 0.50/1.00/1.00"]  # --pages: compare and the rest not visited
