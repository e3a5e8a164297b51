"""The command line: probe reports skipped files, status shows built and stale stages."""

from __future__ import annotations

from test_probing import make_messy_folder

from and_engine.cli import main
from and_engine.config import Config
from and_engine.pipeline.status import changed_keys


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
    assert main(["status", "--config", str(fresh)]) == 1
    assert "nothing built yet" in capsys.readouterr().err
    assert main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "config keys changed since the last finished build: none" in out
    rows = [line for line in out.splitlines() if line.startswith(("activations ", "module_c "))]
    assert len(rows) == 2 and all(r.endswith("up to date") for r in rows)
    changed = tmp_path / "changed.toml"
    changed.write_text(path.read_text().replace("[analyses]", "[module_b]\nthreshold = 0.5\n[analyses]"))
    assert main(["status", "--config", str(changed)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["activations"].endswith("up to date") and lines["clips"].endswith("up to date")
    assert lines["module_b"].endswith("recompute 5 of 5")  # four layers and the SAE layer
    assert lines["adjective_checks"].endswith("recompute 1 of 1")
    assert "module_b.threshold" in lines["config"]


def test_status_sees_that_module_c_reads_basic_adjectives(tiny_build, tmp_path, capsys):
    """[analyses].basic_adjectives feeds Module C and the adjective checks (the section-level status missed it)."""
    path, _, _ = tiny_build
    changed = tmp_path / "changed.toml"
    changed.write_text(path.read_text().replace("[analyses]", '[analyses]\nbasic_adjectives = ["loud"]'))
    assert main(["status", "--config", str(changed)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "recompute 5 of 5" in lines["module_c"] and "recompute 1 of 1" in lines["adjective_checks"]
    assert lines["module_b"].endswith("up to date") and lines["clusters"].endswith("up to date")


def test_changed_keys_name_leaf_keys_and_models_by_name():
    a = Config().to_dict()
    b = {**a, "module_b": {**a["module_b"], "threshold": 0.5},
         "models": [{**a["models"][0], "train_epochs": 3}]}
    assert changed_keys(a, b) == ["models[yamnet].train_epochs", "module_b.threshold"]
    assert changed_keys(a, a) == []
