"""LiveCache: the side database of live LLM answers (first answer kept, provenance, locked-file error)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from and_engine.store.live_cache import LiveCache
from and_engine.store.side_db import SideDatabaseLockedError


def _row(key: str, response: str) -> dict:
    return {"cache_key": key, "prompt": f"prompt {key}", "response": response, "backend": "llama-cpp",
            "llm_model": "m.gguf#abc", "params_json": '{"temperature": 0.0}'}


def test_answers_are_kept_once_with_their_provenance(tmp_path):
    cache = LiveCache(tmp_path / "live.duckdb")
    assert cache.cache_get(["a"]) == {}
    cache.cache_put([_row("a", "first"), _row("b", "other")])
    cache.cache_put([_row("a", "second")])  # a key present keeps its first answer
    again = LiveCache(tmp_path / "live.duckdb")  # reopened: the answers are on disk
    assert again.cache_get(["a", "b", "c"]) == {"a": "first", "b": "other"}
    rows = again.rows(["b"])
    assert rows.to_dict("records")[0] | {"created_at": None} == _row("b", "other") | {"created_at": None}
    assert rows["created_at"].notna().all()


def test_a_file_held_by_another_process_gives_a_clear_error(tmp_path):
    path = tmp_path / "live.duckdb"
    LiveCache(path)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); "
                               "print('ok', flush=True); time.sleep(30)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(SideDatabaseLockedError, match="live LLM cache database .* stayed locked"):
            LiveCache(path, retry_s=0.3).cache_put([_row("a", "x")])
    finally:
        holder.kill()
        holder.wait()
