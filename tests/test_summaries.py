"""The summaries stage: shared top-K sets share one call, overrides, parsing, and the describe steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from _describe_fixtures import CAPTIONS
from fakes import DictCache, ScriptedLLM

from and_engine.backends.llm import CachedLLM
from and_engine.backends.registry import make
from and_engine.config import LLMConfig, SummariesConfig, SummaryOverride
from and_engine.stages.summaries import SummariesInputError, assign_llms, compute_summaries, summary_prompts
from and_engine.store.schema import columns
from and_engine.text.prompts import SUMMARY_TEMPLATE_ID, build_summary_prompt


def _extremes(top: list[list[int]], bottom: list[list[int]]) -> pd.DataFrame:
    return pd.DataFrame({"model": "m", "layer": "l", "neuron": np.arange(len(top)), "topk_clip_ids": top,
                         "bottomk_clip_ids": bottom})


CAPS = pd.DataFrame({"clip_id": range(len(CAPTIONS)), "caption": CAPTIONS})


def _cached(llm, cache=None):
    cache = cache or DictCache()
    return CachedLLM(llm, cache.get, cache.put, SUMMARY_TEMPLATE_ID), cache


def test_prompts_list_the_set_in_clip_id_order():
    p = summary_prompts(_extremes([[4, 0, 1]], [[3, 2, 1]]), CAPS)
    assert p["side"].tolist() == ["top", "bottom"]
    assert p["prompt"][0] == build_summary_prompt([CAPTIONS[0], CAPTIONS[1], CAPTIONS[4]])


def test_same_topk_set_makes_one_call_and_a_rerun_none():
    ext = _extremes([[0, 1, 2], [2, 1, 0], [0, 1, 4]], [[3, 4, 2], [3, 4, 2], [3, 4, 2]])
    llm, cache = _cached(make("llm", "rule"))
    rows = compute_summaries(ext, CAPS, [(np.arange(3), llm)])
    assert llm.stats["calls"] == 3  # 2 distinct top-K sets + 1 bottom-K set
    assert list(rows.columns) == columns("summaries")[1:] and len(rows) == 6
    assert rows.loc[0, "summary"] == rows.loc[2, "summary"] and rows.loc[0, "cache_key"] == rows.loc[2, "cache_key"]
    assert set(rows["backend"]) == {"rule"} and set(rows["status"]) == {"ok"}
    assert rows["side"].tolist() == ["top", "bottom"] * 3 and "dog" in rows.loc[0, "summary"]
    again, _ = _cached(make("llm", "rule"), cache)
    assert compute_summaries(ext, CAPS, [(np.arange(3), again)]).equals(rows) and again.stats["calls"] == 0


def test_garbage_empty_and_chatty_answers_never_crash():
    answers = ["Sure! Here are the commonalities:\n1. All clips are loud.\nI hope this helps!", "", "\x00\x01###",
               "1. Loud.\n2. The clips are all about the"]
    llm, _ = _cached(ScriptedLLM(answers))
    rows = compute_summaries(_extremes([[0, 1], [2, 3]], [[1, 2], [3, 4]]), CAPS, [(np.arange(2), llm)])
    assert rows["summary"].tolist() == ["1. All clips are loud.", "", "", "1. Loud."]
    assert rows["status"].tolist() == ["ok", "empty", "garbage", "truncated"]


def test_empty_caption_gets_an_explicit_marker():
    caps = CAPS.assign(caption=["", *CAPTIONS[1:]])
    prompts = summary_prompts(_extremes([[0, 1]], [[2, 3]]), caps)
    assert "(no description was produced for this clip)" in prompts["prompt"][0]


def test_input_errors_name_the_problem():
    llm, _ = _cached(make("llm", "rule"))
    with pytest.raises(SummariesInputError, match=r"no caption for clip\(s\) \[9\]"):
        compute_summaries(_extremes([[0, 9]], [[1, 2]]), CAPS, [(np.arange(1), llm)])
    with pytest.raises(SummariesInputError, match="without an LLM: \\[1\\]"):
        compute_summaries(_extremes([[0, 1], [1, 2]], [[1, 2], [0, 1]]), CAPS, [(np.array([0]), llm)])
    with pytest.raises(SummariesInputError, match="two LLMs"):
        compute_summaries(_extremes([[0, 1]], [[1, 2]]), CAPS, [(np.array([0]), llm), (np.array([0]), llm)])
    with pytest.raises(SummariesInputError, match="missing columns"):
        summary_prompts(pd.DataFrame({"neuron": [0]}), CAPS)


def test_overrides_pick_a_seeded_sample_of_a_layer():
    real = LLMConfig(backend="openai", model="big", base_url="http://127.0.0.1:8000")
    cfg = SummariesConfig(overrides=(SummaryOverride(llm=real, layers=("l",), sample_neurons=5),))
    plan = assign_llms("m", "l", np.arange(100), cfg, seed=0)
    assert [g[0].backend for g in plan] == ["openai", "rule"] and len(plan[0][1]) == 5 and len(plan[1][1]) == 95
    assert np.array_equal(plan[0][1], assign_llms("m", "l", np.arange(100), cfg, seed=0)[0][1])
    assert not np.array_equal(plan[0][1], assign_llms("m", "l", np.arange(100), cfg, seed=1)[0][1])
    assert [g[0].backend for g in assign_llms("m", "other", np.arange(10), cfg, 0)] == ["rule"]
    whole = SummariesConfig(overrides=(SummaryOverride(llm=real, models=("m",)),))
    assert [(g[0].backend, len(g[1])) for g in assign_llms("m", "x", np.arange(10), whole, 0)] == [("openai", 10)]


def test_two_backends_in_one_layer_record_their_provenance():
    ext = _extremes([[0, 1], [1, 2], [2, 3]], [[3, 4], [0, 4], [0, 1]])
    rule, _ = _cached(make("llm", "rule"))
    scripted, _ = _cached(ScriptedLLM(["1. The clips are loud."]))
    rows = compute_summaries(ext, CAPS, [(np.array([1]), scripted), (np.array([0, 2]), rule)])
    assert rows.groupby("neuron")["backend"].first().tolist() == ["rule", "scripted", "rule"]
    assert rows.groupby("neuron")["llm_model"].first().tolist()[1] == "scripted-v1"


def test_describe_steps_end_to_end(tmp_path):
    from _tiny import write_tiny_config

    from and_engine.config import load_config
    from and_engine.pipeline.core import BuildContext, Progress, run_step
    from and_engine.pipeline.steps_describe import run_describe_steps
    from and_engine.pipeline.steps_probe import run_probe_steps
    from and_engine.store.results import ResultsStore

    config = load_config(write_tiny_config(tmp_path))
    config = dataclasses.replace(config, probing_set=dataclasses.replace(config.probing_set, max_clips=10),
                                 captions=dataclasses.replace(config.captions, tagger="none"))
    with ResultsStore(tmp_path / "d.duckdb") as store:
        ctx = BuildContext(config=config, store=store, run_id="t", progress=Progress(quiet=True))
        run_probe_steps(ctx)
        n = store.count("clips")
        rng = np.random.default_rng(0)
        order = [rng.permutation(n) for _ in range(6)]
        ext = pd.DataFrame({"model": "m", "layer": "l", "neuron": np.arange(6, dtype=np.int32),
                            "topk_clip_ids": [o[:3].tolist() for o in order],
                            "topk_values": [[1.0, 0.9, 0.8]] * 6, "bottomk_clip_ids": [o[-3:].tolist() for o in order],
                            "bottomk_values": [[0.0, 0.1, 0.2]] * 6})
        ext.loc[5, "topk_clip_ids"] = list(ext.loc[4, "topk_clip_ids"])  # neurons 4 and 5 share a top-K set
        run_step(ctx, "extremes", {"model": "m", "layer": "l"}, {"test": 1}, [ctx.fingerprints[("clips", ())]],
                 lambda: {"extremes": ext})
        run_describe_steps(ctx)
        out, summaries = dict(ctx.fingerprints), ("summaries", (("layer", "l"), ("model", "m")))
        assert {("clips", ()), ("captions", ()), summaries} <= set(out)
        caps = store.read("captions", order_by=["clip_id"])
        assert caps["clip_id"].tolist() == list(range(n)) and caps["caption"].str.len().min() > 20
        assert store.count("acoustic_features") == n
        summ = store.read("summaries", model="m", layer="l")
        assert len(summ) == 12 and set(summ["backend"]) == {"rule"}
        llm = next(v for k, v in ctx.objects.items() if isinstance(k, tuple) and k[0] == "cached-llm")
        assert llm.stats["calls"] == store.count("llm_cache") <= 11
        run_describe_steps(ctx)
        assert ctx.fingerprints == out  # unchanged -> both steps skipped
        assert any(s.startswith("summaries") for s in ctx.skipped)
        # run.seed invalidates the step (it seeds the neuron samples of overrides) but is not part of the
        # LLM cache key: recomputed with zero LLM calls
        ctx2 = BuildContext(config=dataclasses.replace(config, run=dataclasses.replace(config.run, seed=1)),
                            store=store, run_id="t2", progress=Progress(quiet=True),
                            fingerprints={k: v for k, v in out.items() if k[0] in ("clips", "extremes")})
        run_describe_steps(ctx2)
        assert ctx2.fingerprints[summaries] != out[summaries]
        assert ctx2.fingerprints[("captions", ())] == out[("captions", ())]
        llm2 = next(v for k, v in ctx2.objects.items() if isinstance(k, tuple) and k[0] == "cached-llm")
        assert llm2.stats["calls"] == 0 and llm2.stats["hits"] > 0
