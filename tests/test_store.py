"""ResultsStore: whitelisted identifiers, parameterised values, atomic step commits, LLM cache."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from and_engine.store import schema
from and_engine.store.results import ResultsStore, StoreError, scope_key


def _acts(model: str, layer: str, n_neurons: int, n_clips: int, offset: float = 0.0) -> pd.DataFrame:
    values = [np.arange(n_clips, dtype=np.float32) * (i + 1) + offset for i in range(n_neurons)]
    return pd.DataFrame({"model": model, "layer": layer, "neuron": range(n_neurons), "values": values})


def _commit(store, scope, tables, fp="fp", stage="activations"):
    return store.commit_step("run", stage, scope, {"p": 1}, fp, tables, datetime.now(), "test")


def test_schema_is_consistent():
    for table, cols in schema.TABLES.items():
        names = [c for c, _ in cols]
        assert len(names) == len(set(names)), table
        if table in schema.RESULT_TABLES:
            assert names[0] == "step_id"
    for table, cols in schema.INDEXES.items():
        assert set(cols) <= set(schema.columns(table))


def test_commit_replaces_rows_of_the_same_scope_only(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        _commit(store, {"model": "m", "layer": "a"}, {"activations": _acts("m", "a", 3, 4)})
        _commit(store, {"model": "m", "layer": "b"}, {"activations": _acts("m", "b", 2, 4)})
        _commit(store, {"model": "m", "layer": "a"}, {"activations": _acts("m", "a", 3, 4, 10.0)}, fp="fp2")
        assert store.count("activations") == 5
        assert store.count("steps") == 2
        acts = store.read_activations("m", "a")
        assert acts.shape == (4, 3) and acts[0, 0] == 10.0
        assert store.fingerprint("activations", {"layer": "a", "model": "m"}) == "fp2"
        assert store.read("activations", columns=["neuron"], layer="b", neuron=[1, 5])["neuron"].tolist() == [1]


def test_read_neurons_reads_neurons_of_several_layers_and_models_in_one_query(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        for model, layer, n in (("m", "a", 3), ("m", "b", 2), ("k", "a", 4)):
            _commit(store, {"model": model, "layer": layer}, {"activations": _acts(model, layer, n, 4)})
        keys = pd.DataFrame({"model": ["k", "m", "m", "m", "x"], "layer": ["a", "b", "a", "b", "a"],
                             "neuron": [3, 1, 0, 1, 0]})  # a repeated neuron, and one of no stored model
        queries = []
        real = store.query_df
        store.query_df = lambda sql, params=(): queries.append(sql) or real(sql, params)
        got = store.read_neurons("activations", ["values"], keys)
        assert len(queries) == 1 and queries[0].count("UNION ALL") == 3
        rows = {(r.model, r.layer, r.neuron): r.values[1] for r in got.itertuples()}
        assert rows == {("k", "a", 3): 4.0, ("m", "b", 1): 2.0, ("m", "a", 0): 1.0}  # values[1] = neuron + 1
        assert store.read_neurons("activations", ["values"], keys, step_id=[]).empty  # an empty filter: nothing
        assert list(store.read_neurons("activations", ["values"], keys.iloc[:0]).columns) == [
            "model", "layer", "neuron", "values"]
        with pytest.raises(StoreError, match="unknown column"):
            store.read_neurons("activations", ["value"], keys)
        with pytest.raises(StoreError, match="from keys, not from filters"):
            store.read_neurons("activations", ["values"], keys, neuron=[1])


def test_clip_media_blobs_are_stored_uncompressed(tmp_path):
    """A page reads 10 clips' files: DuckDB would decompress a whole ZSTD blob segment for each read."""
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"sample_rate": 16000, "clip_id": range(300), "audio": [rng.bytes(2000) for _ in range(300)],
                         "audio_mime": "audio/mpeg", "n_mels": 4, "n_frames": 500,
                         "spectrogram": [bytes(2000) for _ in range(300)]})
    with ResultsStore(tmp_path / "r.duckdb") as store:
        _commit(store, {}, {"clip_media": rows}, stage="clip_media")
        with store._db.use() as con:  # write the table to its blocks (as closing the file does)
            con.execute("CHECKPOINT")
        kinds = store.query_df("SELECT column_name, compression FROM pragma_storage_info('clip_media') "
                               "WHERE segment_type = 'BLOB'")
        got = store.read("clip_media", ["clip_id", "audio"], sample_rate=16000, clip_id=[7, 250])
    assert set(kinds["column_name"]) == {"audio", "spectrogram"} and set(kinds["compression"]) == {"Uncompressed"}
    assert got.set_index("clip_id")["audio"].map(bytes).to_dict() == {7: rows["audio"][7], 250: rows["audio"][250]}


def test_failed_commit_leaves_previous_rows(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        _commit(store, {"model": "m"}, {"activations": _acts("m", "a", 3, 4)})
        bad = {"activations": _acts("m", "a", 2, 4), "extremes": pd.DataFrame({"model": ["m"]})}
        with pytest.raises(StoreError, match="missing columns"):
            _commit(store, {"model": "m"}, bad, fp="new")
        assert store.count("activations") == 3 and store.fingerprint("activations", {"model": "m"}) == "fp"

        class Boom(RuntimeError):
            pass

        original = store._insert_rows
        calls = []

        def insert_then_fail(table, tbl):
            calls.append(table)
            original(table, tbl)
            if len(calls) == 2:
                raise Boom("crash between two tables")

        store._insert_rows = insert_then_fail
        two = {"activations": _acts("m", "a", 2, 4), "layers": pd.DataFrame(
            {"model": ["m"], "layer": ["a"], "module_path": ["x"], "kind": ["linear"], "block": [0],
             "layer_index": [0], "n_neurons": [2], "map_freq": [0], "map_time": [0]})}
        with pytest.raises(Boom):
            _commit(store, {"model": "m"}, two, fp="new")
        assert store.count("activations") == 3 and store.count("layers") == 0
        assert store.fingerprint("activations", {"model": "m"}) == "fp"


def _closed(**change) -> pd.DataFrame:
    row = {"model": "m", "layer": "l", "neuron": 0, "method": "DB", "similarity": "cos", "rank": 1, "concept": "dog",
           "score": 0.5}
    return pd.DataFrame([row, {**row, **change}])


@pytest.mark.parametrize("table, rows, message", [
    ("closed_concepts", _closed(similarity="icl"),
     r"closed_concepts.similarity: value\(s\) \['icl'\] not allowed; "
     r"allowed: \['cos', 'cos3', 'rank_reorder', 'wpmi', 'soft_wpmi', 'llm'\]"),
    ("closed_concepts", _closed(method="db"), r"closed_concepts.method: value\(s\) \['db'\]"),
    ("closed_concepts", _closed(rank=0), r"closed_concepts.rank: ranks start at 1, got 0"),
    ("open_concepts", pd.DataFrame({"model": "m", "layer": "l", "neuron": [0, 1], "word": "loud",
                                    "pos": ["ADJ", "adjective"], "count": 1}),
     r"open_concepts.pos: value\(s\) \['adjective'\] not allowed; allowed: \['ADJ', 'NOUN'\]"),
    ("summaries", pd.DataFrame({"model": "m", "layer": "l", "neuron": 0, "side": ["top", "high"], "summary": "",
                                "cache_key": "", "backend": "", "llm_model": "", "status": "ok"}), r"summaries.side"),
    ("summaries", pd.DataFrame({"model": "m", "layer": "l", "neuron": 0, "side": ["top", "bottom"], "summary": "",
                                "cache_key": "", "backend": "", "llm_model": "", "status": ["ok", None]}),
     r"summaries.status: value\(s\) \[None\]"),
    ("pruning_summary", pd.DataFrame({"model": "m", "method": ["OCP", "ocp"], "mean_pruned": 1.0, "delta_a": 0.0,
                                      "delta_r": 0.0, "delta_a_minus_r": 0.0, "n_concepts": 1}),
     r"pruning_summary.method"),
])
def test_commit_refuses_values_outside_the_contract(tmp_path, table, rows, message):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        with pytest.raises(StoreError, match=message):
            _commit(store, {"model": "m"}, {table: rows}, stage="x")
        assert store.count(table) == 0 and store.count("steps") == 0
        _commit(store, {"model": "m"}, {table: rows.iloc[:1]}, stage="x")  # the allowed row alone commits
        assert store.count(table) == 1
        with pytest.raises(StoreError, match=r"runs.status: value\(s\) \['finished'\]"):
            store.record_run("r", "c", "{}", "h", "v", "finished")


def test_schema_values_match_the_engine():
    from and_engine.stages.similarity import SIMILARITIES
    from and_engine.text.answers import ANSWER_STATUSES

    assert tuple(SIMILARITIES) == schema.SIMILARITIES and ANSWER_STATUSES == schema.SUMMARY_STATUSES
    assert set(schema.PENN_POS.values()) == set(schema.VALUES["open_concepts"]["pos"])
    for table, cols in schema.VALUES.items():
        assert set(cols) <= set(schema.columns(table)), table
    for table, col in schema.RANKED.items():
        assert col in schema.columns(table)


def test_identifiers_are_whitelisted_and_values_bound(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        _commit(store, {"model": "m"}, {"activations": _acts("m", "a", 1, 2)})
        with pytest.raises(StoreError, match="unknown table"):
            store.read("activations; DROP TABLE steps")
        with pytest.raises(StoreError, match="unknown column"):
            store.read("activations", columns=["neuron", "1; DROP TABLE steps"])
        with pytest.raises(StoreError, match="unknown column"):
            store.read("activations", **{"model = 'm' OR 1=1 --": "x"})
        assert store.read("activations", model="m' OR '1'='1").empty
        assert store.read("activations", neuron=[]).empty


def test_llm_cache_keeps_first_answer(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        row = {"cache_key": "k", "prompt": "p", "response": "first", "backend": "rule", "llm_model": "",
               "params_json": "{}"}
        store.cache_put([row])
        store.cache_put([{**row, "response": "second"}, {**row, "cache_key": "k2"}])
        assert store.cache_get(["k", "k2", "missing"]) == {"k": "first", "k2": "first"}


def test_read_only_store_needs_an_existing_database(tmp_path):
    with pytest.raises(StoreError, match="not found"):
        ResultsStore(tmp_path / "none.duckdb", read_only=True)
    assert scope_key({"model": "m", "layer": "l"}) == "layer=l/model=m" and scope_key({}) == "-"
