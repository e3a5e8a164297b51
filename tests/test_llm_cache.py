"""CachedLLM and cache_key: dedupe, zero calls on a rerun, chunked commits that survive a crash."""

from __future__ import annotations

import pytest
from fakes import DictCache, ScriptedLLM

from and_engine.backends.llm import CachedLLM, cache_key
from and_engine.backends.registry import LLMError
from and_engine.store.results import ResultsStore


def test_cache_key_covers_every_part():
    base = cache_key([3, 1, 2], "t", "rule", "m", {"temperature": 0.0})
    assert base == cache_key([1, 2, 3], "t", "rule", "m", {"temperature": 0.0})  # sorted clip ids
    assert len(base) == 64
    others = [cache_key([1, 2, 4], "t", "rule", "m", {"temperature": 0.0}),
              cache_key([1, 2, 3], "u", "rule", "m", {"temperature": 0.0}),
              cache_key([1, 2, 3], "t", "openai", "m", {"temperature": 0.0}),
              cache_key([1, 2, 3], "t", "rule", "n", {"temperature": 0.0}),
              cache_key([1, 2, 3], "t", "rule", "m", {"temperature": 1.0}),
              cache_key("prompt", "t", "rule", "m", {"temperature": 0.0})]
    assert len({base, *others}) == 7


def test_duplicates_and_reruns_make_no_calls():
    cache, llm = DictCache(), ScriptedLLM(["a1", "a2", "a3"])
    cached = CachedLLM(llm, cache.get, cache.put, template="t", chunk_size=2)
    assert cached.generate(["p1", "p2", "p1", "p3"]) == ["a1", "a2", "a1", "a3"]
    assert llm.calls == 3 and cache.puts == 2  # 3 unique prompts in chunks of 2
    again = CachedLLM(ScriptedLLM(["zzz"]), cache.get, cache.put, template="t")
    again.llm.describe = llm.describe  # same backend/model -> same keys
    assert again.generate(["p3", "p1"]) == ["a3", "a1"] and again.llm.calls == 0
    assert again.stats == {"requests": 2, "hits": 2, "calls": 0}


def test_crash_keeps_the_committed_chunks_in_a_real_store(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        crashing = CachedLLM(ScriptedLLM(["x"], fail_after=2), store.cache_get, store.cache_put, "t", chunk_size=2)
        with pytest.raises(RuntimeError, match="crashed"):
            crashing.generate(["p1", "p2", "p3", "p4"])
        rows = store.read("llm_cache", order_by=["prompt"])
        assert rows["prompt"].tolist() == ["p1", "p2"] and set(rows["backend"]) == {"scripted"}
        resumed = CachedLLM(ScriptedLLM(["y"]), store.cache_get, store.cache_put, "t", chunk_size=2)
        assert resumed.generate(["p1", "p2", "p3", "p4"]) == ["x", "x", "y", "y"]
        assert resumed.llm.calls == 2 and store.count("llm_cache") == 4


def test_backend_returning_wrong_count_is_an_error():
    class Short(ScriptedLLM):
        def generate(self, prompts):
            return ["only one"]

    cache = DictCache()
    with pytest.raises(LLMError, match="1 answers for 2 prompts"):
        CachedLLM(Short([]), cache.get, cache.put, "t").generate(["a", "b"])
    assert cache.rows == {}
