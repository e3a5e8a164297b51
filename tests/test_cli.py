"""The command line: probe reports skipped files, status shows built and stale stages."""

from __future__ import annotations

from test_probing import make_messy_folder

from and_engine.cli import changed_sections, main
from and_engine.config import Config


def test_probe_lists_skipped_files_by_name(tmp_path, capsys):
    root = make_messy_folder(tmp_path / "messy")
    assert main(["probe", str(root)]) == 0
    out = capsys.readouterr().out
    assert "4 usable clip(s), 2 class(es)" in out
    assert "SKIPPED rain/silent.wav: silent" in out and "SKIPPED dog/corrupt.wav" in out
    assert "6 file(s) skipped" in out


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[module_b]\nthreshold = 'x'\n")
    assert main(["status", "--config", str(bad)]) == 2
    assert "module_b.threshold must be a number" in capsys.readouterr().err


def test_status_before_and_after_a_build(tiny_build, tmp_path, capsys):
    path, _, _ = tiny_build
    fresh = tmp_path / "fresh.toml"
    fresh.write_text(path.read_text().replace("tiny.duckdb", "never-built.duckdb"))
    assert main(["status", "--config", str(fresh)]) == 0
    assert "nothing built yet" in capsys.readouterr().out
    assert main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "config sections changed since the last build: none" in out
    assert "activations" in out and "stale" not in out
    changed = tmp_path / "changed.toml"
    changed.write_text(path.read_text().replace("[analyses]", "[module_b]\nthreshold = 0.5\n[analyses]"))
    assert main(["status", "--config", str(changed)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert lines["activations"].endswith("up to date") and lines["clips"].endswith("up to date")
    assert "module_b" in lines["config"]


def test_changed_sections():
    a = Config().to_dict()
    b = {**a, "module_b": {**a["module_b"], "threshold": 0.5}}
    assert changed_sections(a, b) == ["module_b"]


def test_stale_stages_follow_inputs():
    from and_engine.cli import STAGE_INPUTS, stale_stages

    assert stale_stages([]) == set()
    module_b = stale_stages(["module_b"])
    assert {"module_b", "adjective_checks", "module_c", "pruning", "adjectives"} <= module_b
    assert not {"activations", "captions", "summaries", "module_a", "clusters"} & module_b
    assert stale_stages(["probing_set"]) == set(STAGE_INPUTS)
