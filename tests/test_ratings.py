"""RatingsStore: validation, durability, latest-wins reads, concurrent threads and processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest
from fakes import LockedAfterInserts

import and_engine.store.ratings as ratings_module
from and_engine.store.ratings import RatedDescription, RatingError, RatingsLockedError, RatingsStore, bound_to

ROOT = Path(__file__).resolve().parent.parent

_WRITER = """
import os, sys, time
from and_engine.store.ratings import RatingsStore
store = RatingsStore(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[1] + ".go"):  # start together so the writes really contend
    time.sleep(0.01)
for i in range(int(sys.argv[3])):
    store.add_rating(sys.argv[2], "m", "l", i, "DB", "desc", 1 + i % 5)
"""


def test_rating_roundtrip_and_latest_wins(tmp_path):
    store = RatingsStore(tmp_path / "r.duckdb")
    store.add_rating("ann", "yamnet", "b1", 3, "DB", "dog barking", 2, position=1)
    store.add_rating("ann", "yamnet", "b1", 3, "DB", "dog barking", 5, position=1)
    store.add_rating("ann", "yamnet", "b1", 3, "TAB", "dog", 4)
    store.add_summary("ann", "yamnet", "b1", 3, "  dogs bark loudly ")
    again = RatingsStore(tmp_path / "r.duckdb")  # durable: a new store sees committed rows
    latest = again.ratings()
    assert len(latest) == 2
    assert latest.set_index("method").loc["DB", "rating"] == 5
    assert len(again.ratings(latest_only=False)) == 3
    assert again.summaries()["text"].tolist() == ["dogs bark loudly"]
    assert again.rated_neurons("ann") == {("yamnet", "b1", 3)}
    assert again.rated_neurons("bob") == set()


@pytest.mark.parametrize("kwargs, field", [
    ({"rating": 0}, "rating"), ({"rating": 6}, "rating"), ({"rating": True}, "rating"),
    ({"method": "ICL"}, "method"), ({"rater": " "}, "rater"),
])
def test_bad_rating_is_rejected(tmp_path, kwargs, field):
    store = RatingsStore(tmp_path / "r.duckdb")
    args = {"rater": "ann", "model": "m", "layer": "l", "neuron": 0, "method": "DB", "description": "d",
            "rating": 3, **kwargs}
    with pytest.raises(RatingError, match=field):
        store.add_rating(**args)
    with pytest.raises(RatingError, match="summary text"):
        store.add_summary("ann", "m", "l", 0, "   ")


def test_concurrent_threads_lose_nothing(tmp_path):
    store = RatingsStore(tmp_path / "r.duckdb")
    errors: list[BaseException] = []

    def rate(rater: str) -> None:
        try:
            for i in range(12):
                store.add_rating(rater, "m", "l", i, "SUMMARY", "text", 1 + i % 5)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=rate, args=(f"rater{k}",)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.ratings(latest_only=False)) == 72
    assert store.ratings().groupby("rater").size().tolist() == [12] * 6


def test_two_processes_lose_nothing(tmp_path):
    path = tmp_path / "r.duckdb"
    RatingsStore(path)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"p{k}", "20"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    Path(str(path) + ".go").touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    df = RatingsStore(path).ratings(latest_only=False)
    assert sorted(df.groupby("rater").size().items()) == [("p0", 20), ("p1", 20)]


def test_lock_held_too_long_gives_clear_error(tmp_path):
    path = tmp_path / "r.duckdb"
    RatingsStore(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('ok', flush=True);"
         " time.sleep(30)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(RatingsLockedError, match="stayed locked"):
            RatingsStore(path, retry_s=0.5)
    finally:
        holder.kill()
        holder.wait()
    assert isinstance(duckdb.connect(str(path)).execute("SELECT count(*) FROM ratings").fetchone()[0], int)


def _submission(store: RatingsStore, neuron: int = 7, steps=("s-a", "s-a", "s-b")) -> str:
    rated = [RatedDescription(m, f"{m} text", score, i, step)
             for i, (m, score, step) in enumerate(zip(("DB", "TAB", "SUMMARY"), (4, 2, 5), steps))]
    return store.add_submission("ann", "m", "l", neuron, rated, text="  dogs bark  ", results_run_id="run1")


def test_a_submission_is_one_transaction_or_nothing(tmp_path, monkeypatch):
    store = RatingsStore(tmp_path / "r.duckdb", retry_s=0.3)
    lock = LockedAfterInserts(allowed=1)  # the lock is taken by another process after the first row
    monkeypatch.setattr(ratings_module, "duckdb", lock)
    with pytest.raises(RatingsLockedError, match="stayed locked"):
        _submission(store)
    lock.release()
    assert store.ratings(latest_only=False).empty and store.summaries().empty
    assert store.rated_neurons("ann") == set()  # the neuron stays in the rater's queue

    sid = _submission(store)  # the lock is free again: everything, once
    saved = store.ratings(latest_only=False)
    assert sorted(saved["method"]) == ["DB", "SUMMARY", "TAB"] and set(saved["submission_id"]) == {sid}
    assert store.summaries()[["text", "submission_id"]].values.tolist() == [["dogs bark", sid]]


def test_a_submission_retried_after_a_transient_lock_is_stored_once(tmp_path, monkeypatch):
    store = RatingsStore(tmp_path / "r.duckdb", retry_s=5)
    lock = LockedAfterInserts(allowed=1)
    monkeypatch.setattr(ratings_module, "duckdb", lock)
    threading.Timer(0.3, lock.release).start()  # the other process lets go while the submission retries
    _submission(store)
    assert len(store.ratings(latest_only=False)) == 3 and len(store.summaries()) == 1


def test_invalid_submission_writes_nothing(tmp_path):
    store = RatingsStore(tmp_path / "r.duckdb")
    good, bad = RatedDescription("DB", "dog", 3), RatedDescription("TAB", "cat", 9)
    with pytest.raises(RatingError, match="rating must be"):
        store.add_submission("ann", "m", "l", 0, [good, bad], text="x")
    with pytest.raises(RatingError, match="once per submission"):
        store.add_submission("ann", "m", "l", 0, [good, good])
    assert store.ratings(latest_only=False).empty and store.summaries().empty


def test_ratings_are_bound_to_the_steps_of_their_descriptions(tmp_path):
    store = RatingsStore(tmp_path / "r.duckdb")
    _submission(store, neuron=1, steps=("s-a", "s-a", "s-b"))
    _submission(store, neuron=2, steps=("s-a", "s-a", "s-old"))  # its summary was rewritten by a later build
    assert store.rated_neurons("ann") == {("m", "l", 1), ("m", "l", 2)}
    assert store.rated_neurons("ann", {"s-a", "s-b"}) == {("m", "l", 1)}  # neuron 2 is offered again
    latest = store.ratings()
    stale = latest[~bound_to(latest, {"s-a", "s-b"})]
    assert stale[["neuron", "method"]].values.tolist() == [[2, "SUMMARY"]]


def test_a_ratings_database_from_before_submissions_is_upgraded(tmp_path):
    path = tmp_path / "r.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE ratings (rating_id VARCHAR, rater VARCHAR, model VARCHAR, layer VARCHAR, "
                "neuron INTEGER, method VARCHAR, description VARCHAR, position INTEGER, rating INTEGER, "
                "results_run_id VARCHAR, created_at TIMESTAMP)")
    con.execute("INSERT INTO ratings VALUES ('r0', 'ann', 'm', 'l', 3, 'DB', 'dog', 0, 4, 'run0', now()::TIMESTAMP)")
    con.close()
    store = RatingsStore(path)
    _submission(store, neuron=1)
    assert len(store.ratings()) == 4
    assert store.rated_neurons("ann") == {("m", "l", 1), ("m", "l", 3)}
    assert store.rated_neurons("ann", {"s-a", "s-b"}) == {("m", "l", 1)}  # the old rating names no step
