"""scripts/setup.sh: the CPU install refuses torchvision / torchaudio; ``--gpu`` installs requirements-gpu.txt
(vllm needs both) and does not. Run against a stand-in virtual environment whose pip records its calls."""

from __future__ import annotations

import os
import subprocess

import pytest

from and_engine.config import PROJECT_ROOT

PIP = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../pip.log"
[ "$1" = show ] && exit 0   # torchvision / torchaudio are installed in this environment
exit 0
"""


def _venv(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name, text in (("pip", PIP), ("python", "#!/usr/bin/env bash\nexit 0\n")):
        (venv / "bin" / name).write_text(text)
        (venv / "bin" / name).chmod(0o755)
    return venv


def _run(venv, *args):
    env = {**os.environ, "AND_VENV": str(venv)}
    return subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "setup.sh"), *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_gpu_install_takes_requirements_gpu_and_keeps_torchvision(tmp_path):
    venv = _venv(tmp_path)
    done = _run(venv, "--gpu")
    assert done.returncode == 0, done.stderr
    log = (venv / "pip.log").read_text()
    assert "install --progress-bar on -r requirements.txt -r requirements-gpu.txt" in log
    assert "show torchvision" not in log
    assert "Python packages up to date" in _run(venv, "--gpu").stdout  # idempotent


def test_cpu_install_still_refuses_torchvision(tmp_path):
    venv = _venv(tmp_path)
    done = _run(venv)
    assert done.returncode == 1 and "torchvision/torchaudio got installed" in done.stderr
    assert "requirements-gpu.txt" not in (venv / "pip.log").read_text()


@pytest.mark.parametrize("name", ["vllm", "torchvision", "torchaudio", "transformers", "torch"])
def test_gpu_requirements_are_pinned(name):
    lines = [ln.split("#")[0].strip() for ln in (PROJECT_ROOT / "requirements-gpu.txt").read_text().splitlines()]
    assert any(ln.startswith(f"{name}==") for ln in lines), name
