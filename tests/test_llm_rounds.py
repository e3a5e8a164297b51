"""LLM rounds in a build (plan -> execute -> ingest): with the recording fake of vllm (``tests/fake_packages/vllm``),
a build sends exactly one request list per round with every uncached prompt, a rerun sends none, steps
recomputed from the cache send none, and a crash mid-round resumes with the uncommitted prompts only."""

from __future__ import annotations

import pytest
from _tiny import write_config
from fakes import vllm_calls

from and_engine.config import load_config
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.pipeline.plan import make_plan
from and_engine.store.results import ResultsStore
from and_engine.text.prompts import parse_prompt

BODY = """
[[models]]
name = "yamnet"
kind = "yamnet"
layers = ["block1.conv", "block2.pointwise"]

[summaries.llm]
backend = "vllm"
model = "fake/instruct-model"
batch_size = 8
{extra}
"""


def _config(folder, extra: str = ""):
    return load_config(write_config(folder, BODY.format(extra=extra), max_clips=26))


def _kinds(db) -> dict[str, int]:
    """Prompts in llm_cache by kind (summary / icl / adjective)."""
    with ResultsStore(db, read_only=True) as store:
        prompts = store.read("llm_cache", ["prompt"])["prompt"]
    kinds = [parse_prompt(p).kind for p in prompts]
    return {k: kinds.count(k) for k in ("summary", "icl", "adjective")}


def test_one_request_list_per_round_and_a_rerun_sends_nothing(tmp_path, fake_vllm):
    config = _config(tmp_path)
    db = config.resolve(config.run.database)
    build(config, Progress(quiet=True), until="dissect")
    n = _kinds(db)
    assert n["summary"] > 64 and n["icl"] > 0 and n["adjective"] > 0  # today's 32-prompt chunks: many calls
    assert vllm_calls(fake_vllm) == [("chat", n["summary"]), ("chat", n["icl"] + n["adjective"])]
    assert len(fake_vllm.INITS) == 1  # one engine for both rounds
    with ResultsStore(db, read_only=True) as store:
        summaries = store.read("summaries", order_by=["layer", "neuron", "side"])
        icl = store.read("closed_concepts", method="ICL")
        assert store.query_df("SELECT count(DISTINCT cache_key) AS n FROM summaries")["n"][0] == n["summary"]
    assert set(summaries["backend"]) == {"vllm"} and (summaries["status"] == "ok").all() and len(icl)

    fake_vllm.reset()
    again = build(config, Progress(quiet=True), until="dissect")
    assert vllm_calls(fake_vllm) == [] and again.executed == []

    with ResultsStore(db) as store:  # recompute the LLM steps: every answer comes from the cache
        store.delete_steps_except(set(), ["summaries", "module_a_icl", "adjective_checks"])
    progress = Progress(quiet=True)
    redo = build(config, progress, until="dissect")
    assert vllm_calls(fake_vllm) == [] and any(s.startswith("summaries") for s in redo.executed)
    assert not [m for m in progress.messages if m.startswith("LLM round") and "0 sent" not in m]
    with ResultsStore(db, read_only=True) as store:
        again = store.read("summaries", order_by=["layer", "neuron", "side"])
    cols = ["layer", "neuron", "side", "summary", "status", "cache_key"]
    assert again[cols].equals(summaries[cols])


def test_a_crash_mid_round_resumes_with_the_uncommitted_prompts_only(tmp_path, fake_vllm):
    config = _config(tmp_path, "commit_every = 16")
    db = config.resolve(config.run.database)
    fake_vllm.FAIL_ON_CALL = 3  # round 1, third chunk of 16: two chunks are committed
    with pytest.raises(RuntimeError, match="fake vllm: crashed on call 3"):
        build(config, Progress(quiet=True), until="dissect")
    assert vllm_calls(fake_vllm) == [("chat", 16)] * 3
    crashed = set(fake_vllm.PROMPTS[2])
    with ResultsStore(db, read_only=True) as store:
        assert store.count("llm_cache") == 32 and store.count("summaries") == 0
        committed = set(store.read("llm_cache", ["prompt"])["prompt"])

    fake_vllm.reset()
    build(config, Progress(quiet=True), until="dissect")
    n = _kinds(db)
    resent = [p for call in fake_vllm.PROMPTS for p in call if parse_prompt(p).kind == "summary"]
    assert len(resent) == len(set(resent)) == n["summary"] - 32  # everything but the committed chunks, once
    assert not committed & set(resent) and crashed <= set(resent)
    assert all(size <= 16 for _, size in vllm_calls(fake_vllm))


def test_the_llm_scorers_are_round_3_one_request_list_and_a_rerun_sends_nothing(tmp_path, fake_vllm):
    """The detection / simulation judge prompts of every layer go out as one list (before: one call per layer
    and scorer), and the llm_scores steps read every answer from the cache."""
    config = _config(tmp_path, "\n[scores]\nllm_scorers = [\"detection\", \"simulation\"]\nllm_neurons = 3\n")
    db = config.resolve(config.run.database)
    before = {r.kind: r for r in make_plan(config, None).rounds if r.round == 3}
    progress = Progress(quiet=True)
    build(config, progress, until="scores")
    with ResultsStore(db, read_only=True) as store:
        prompts = store.read("llm_cache", ["prompt"])["prompt"]
        scored = store.query_df("SELECT layer, count(DISTINCT neuron) AS n FROM explanation_scores "
                                "WHERE scorer IN ('detection', 'simulation') GROUP BY layer")
    judge = [p for p in prompts if parse_prompt(p).kind in ("detection", "simulation")]
    assert len(fake_vllm.CALLS) == 3 and vllm_calls(fake_vllm)[2] == ("chat", len(judge)) and len(judge) > 0
    assert sorted(scored["n"]) == [3, 3]  # both layers, the sampled neurons
    assert any(m.startswith("LLM round 3") and f"{len(judge)} sent as 1 request list" in m for m in progress.messages)
    # plan estimated round 3 before anything existed: an upper bound of what was sent (sampled neurons x sources)
    assert set(before) == {"detection", "simulation"} and all(r.estimated == r.send for r in before.values())
    assert len(judge) <= sum(r.send for r in before.values()) <= 2 * len(judge)

    fake_vllm.reset()
    with ResultsStore(db) as store:  # recompute the LLM scores: every answer comes from the cache
        store.delete_steps_except(set(), ["llm_scores"])
    with ResultsStore(db, read_only=True) as store:  # plan now builds the exact prompts, every one cached
        exact = [r for r in make_plan(config, store).rounds if r.round == 3]
    assert sum(r.unique for r in exact) == sum(r.cached for r in exact) == len(judge)
    assert all(r.estimated == r.send == 0 for r in exact)
    redo = build(config, Progress(quiet=True), until="scores")
    assert fake_vllm.CALLS == [] and any(s.startswith("llm_scores") for s in redo.executed)
