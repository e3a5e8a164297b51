"""Session fixtures: one tiny pipeline build shared by the pipeline, app and browser tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """Build the tiny configuration once -> (config path, Config, BuildResult)."""
    from _tiny import write_tiny_config

    from and_engine.config import load_config
    from and_engine.pipeline.build import build
    from and_engine.pipeline.core import Progress

    folder = tmp_path_factory.mktemp("tiny")
    path = write_tiny_config(folder)
    config = load_config(path)
    result = build(config, Progress(quiet=True))
    return path, config, result
