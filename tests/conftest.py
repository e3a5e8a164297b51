"""Session fixtures: the app's fixture database and one tiny pipeline build, each built once per session."""

from __future__ import annotations

import hashlib
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _model_identity_cache(tmp_path_factory):
    """File digests of model identities (and_engine.model_identity) are kept in a session folder, not ~/.cache."""
    os.environ.setdefault("AND_ENGINE_CACHE", str(tmp_path_factory.mktemp("identity-cache")))


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


@pytest.fixture(scope="session")
def app_db(tmp_path_factory):
    """The app's test database (``_app_fixture.build_fixture_db``: the engine's stage functions with fakes),
    built once; every page / query / live test opens it read-only (a test that writes uses a copy of it)."""
    from _app_fixture import build_fixture_db

    path = build_fixture_db(tmp_path_factory.mktemp("app") / "results.duckdb")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    yield path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "a test wrote to the shared app database"



@pytest.fixture()
def fake_vllm(monkeypatch):
    """The recording fake of the ``vllm`` package (``tests/fake_packages/vllm``, ``fakes.use_fake_vllm``) importable
    as ``vllm``, reset; the real one (if any) is restored afterwards."""
    from fakes import use_fake_vllm

    vllm = use_fake_vllm(monkeypatch)
    yield vllm
    vllm.reset()
