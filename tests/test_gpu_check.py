"""scripts/gpu_check.sh: the tiny build through the GPU code paths runs (here with --cpu), and on a machine
without some modules the script installs them from the carried wheels, or names the missing wheel."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from and_engine.config import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "gpu_check.sh"
HIDE = PROJECT_ROOT / "tests" / "hide_modules"


def _check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", PROJECT_ROOT / "scripts" / "gpu_check" / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cpu_dry_run_builds_through_the_gpu_paths(capsys):
    assert _check_module().main(["--cpu"]) == 0
    out = capsys.readouterr().out
    assert "summaries run on the transformers LLM backend instead" in out  # no vllm here: it says so
    for step in ("activations layer=block0.mlp.fc1", "activation_maps layer=block1.attn.out", "captions:",
                 "summaries layer=classifier", "module_a layer=", "module_b layer=", "module_a_icl layer="):
        assert step in out, step
    assert "build: 60 steps" in out  # the clip_media step among them


def test_wheels_list_is_pinned_and_parsable():
    for line in (PROJECT_ROOT / "scripts" / "gpu_check" / "wheels.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            module, _, wheels = line.partition(":")
            assert module.isidentifier() and all("==" in w for w in wheels.split(",")), line


def test_a_missing_module_without_its_wheel_is_named(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(HIDE), "AND_HIDE_MODULES": "duckdb", "GPU_CHECK_WHEELS": str(tmp_path),
           "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT), "--cpu"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "duckdb is not installed and duckdb==2.0.0 is not in" in done.stderr and "--fetch-wheels" in done.stderr
