"""CachedLLM, cache_key and LLM rounds (plan -> execute -> ingest): dedupe, one request list per backend,
zero calls on a rerun, chunked commits that survive a crash."""

from __future__ import annotations

import pytest
from fakes import DictCache, ScriptedLLM

from and_engine.backends.llm import CachedLLM, cache_key, run_round
from and_engine.backends.llm_exec import LocalExecutor, commit_size
from and_engine.backends.registry import LLMConfigError, LLMError
from and_engine.config import LLMConfig
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


class StreamingLLM(ScriptedLLM):
    """A backend with ``stream``: answers in reverse order (as a concurrent server may finish them)."""

    def stream(self, prompts):
        answers = self.generate(prompts)
        yield from reversed(list(enumerate(answers)))


def test_a_round_sends_each_backend_one_request_list_of_its_unique_uncached_prompts():
    cache = DictCache()
    one, other = ScriptedLLM(lambda p: "1:" + p), ScriptedLLM(lambda p: "2:" + p)
    other.describe = lambda: {"backend": "other", "model": "o", "params": {}}
    summaries = CachedLLM(one, cache.get, cache.put, template="s", chunk_size=100)
    icl = CachedLLM(one, cache.get, cache.put, template="i", chunk_size=100)  # same backend, other template
    third = CachedLLM(other, cache.get, cache.put, template="s", chunk_size=100)
    summaries.generate(["a"])  # cached before the round
    sent = []
    one.generate = (lambda g: lambda ps: (sent.append(list(ps)), g(ps))[1])(one.generate)
    stats = run_round([(summaries, ["a", "b", "b"]), (summaries, ["c", "b"]), (icl, ["a", "d"]),
                       (third, ["a"])])
    assert sent == [["b", "c", "a", "d"]]  # one call: duplicates once, cached "a" (template s) left out
    assert other.calls == 1 and other.prompts == ["a"]
    assert (stats.prompts, stats.unique, stats.cached, stats.sent, stats.lists, stats.chunks) == (8, 6, 1, 5, 2, 2)
    assert summaries.stats == {"requests": 6, "hits": 1, "calls": 3} and icl.stats["calls"] == 2
    before = (one.calls, other.calls)  # the steps then read everything from the cache
    assert summaries.generate(["c", "b", "a"]) == ["1:c", "1:b", "1:a"] and icl.generate(["d"]) == ["1:d"]
    assert (one.calls, other.calls) == before


def test_streamed_answers_are_committed_per_chunk_in_any_order(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        llm = StreamingLLM(lambda p: p.upper())
        cached = CachedLLM(llm, store.cache_get, store.cache_put, "t", chunk_size=2)
        commits = []
        stats = run_round([(cached, ["p1", "p2", "p3", "p4", "p5"])], on_chunk=commits.append)
        assert commits == [2, 2, 1] and stats.chunks == 3
        rows = store.read("llm_cache", order_by=["prompt"])
        assert rows["response"].tolist() == ["P1", "P2", "P3", "P4", "P5"]


def test_an_executor_that_loses_or_repeats_answers_is_an_error():
    class Repeating(LocalExecutor):
        def run(self, llm, prompts, chunk):
            yield [(0, "x"), (0, "x")]

    class Losing(LocalExecutor):
        def run(self, llm, prompts, chunk):
            yield [(1, "x")]

    for executor, message in ((Repeating(), "answered prompt 0 of 2 twice"), (Losing(), "1 answers for 2")):
        cache = DictCache()
        with pytest.raises(LLMError, match=message):
            CachedLLM(ScriptedLLM(["a"]), cache.get, cache.put, "t", executor=executor).generate(["p", "q"])


def test_commit_size_is_the_configured_one_or_the_backends_default():
    assert commit_size(LLMConfig(backend="vllm")) == 8192 and commit_size(LLMConfig(backend="rule")) == 4096
    assert commit_size(LLMConfig(backend="openai", batch_size=8)) == 32
    assert commit_size(LLMConfig(backend="vllm", commit_every=100)) == 100
    with pytest.raises(LLMConfigError, match="commit_every must be >= 0"):
        commit_size(LLMConfig(commit_every=-1))
