"""Session fixtures: the app's fixture database and one tiny pipeline build, each built once per session."""

from __future__ import annotations

import hashlib
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# no first-paint pause in a fresh session's page run (pages._shared.main_content_sent): AppTest runs every page in a
# new session; tests/test_app_first_paint.py sets it where it tests it
os.environ.setdefault("AND_EXPLORER_FIRST_PAINT_S", "0")


@pytest.fixture(scope="session", autouse=True)
def _model_identity_cache(tmp_path_factory):
    """File digests of model identities (and_engine.model_identity) are kept in a session folder, not ~/.cache."""
    os.environ.setdefault("AND_ENGINE_CACHE", str(tmp_path_factory.mktemp("identity-cache")))


@pytest.fixture(scope="session", autouse=True)
def _no_local_llm(tmp_path_factory):
    """Pages see no local LLM and write live answers to a session folder, whatever is installed on the machine
    (tests/test_app_local_llm.py sets its own; the real-model test reads the installed path at collection)."""
    folder = tmp_path_factory.mktemp("local-llm")
    os.environ["AND_EXPLORER_LOCAL_LLM"] = str(folder / "not-installed.gguf")
    os.environ["AND_EXPLORER_LIVE_CACHE"] = str(folder / "live.duckdb")


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """Build the tiny configuration once -> (config path, Config, BuildResult)."""
    from _tiny import write_tiny_config
    from fakes import ray_unimportable

    from and_engine.config import load_config
    from and_engine.pipeline.build import build
    from and_engine.pipeline.core import Progress

    folder = tmp_path_factory.mktemp("tiny")
    path = write_tiny_config(folder)
    config = load_config(path)
    with ray_unimportable():  # engine = "local" never imports Ray (tests/test_ray_execution.py)
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
