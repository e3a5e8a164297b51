"""Benchmark: the LLM round (plan -> execute -> ingest, one request list) against today's chunked calls.

The summary prompts of a built database's layers (default: every layer of ``yamnet`` in the demo
database) go to an LLM two ways, each into a fresh ``llm_cache``:

* **chunked** (the code before the round): per layer, per 256-neuron slice, ``CachedLLM.generate`` sends
  chunks of 4 x ``batch_size`` prompts as one backend call each and waits for the whole chunk;
* **round**: ``backends.llm.run_round`` sends every unique uncached prompt of every layer as one request
  list (vllm: up to ``commit_size`` = 8,192 prompts a call; openai: ``batch_size`` requests kept in flight).

Two backends:

1. a **recording fake of vLLM** (calls and prompts per call counted) with a modelled engine: continuous
   batching over ``--max-num-seqs`` slots, a decode step costing ``--step-ms`` + ``--step-ms-per-seq`` per
   running sequence (10 + 0.06 ms: about 25 ms at 256 sequences, a rough figure for an 8B model on one
   H100), every answer a seeded log-normal length (mean ``--mean-tokens``, capped at 1,024); a call ends
   when its longest answer does; prefill is not modelled (the same total either way). The time is that
   model's, not measured (no GPU here): it prices the call structure, nothing else.
2. a **real local OpenAI-compatible HTTP server** started here (ThreadingHTTPServer, at most
   ``--server-concurrency`` requests served at once, the rest wait), through the ``openai`` backend with
   ``batch_size`` = ``--client-concurrency``: each request sleeps a fixed ``--delay-ms`` (the task's model of
   a batching server), then again with per-request delays drawn like the answer lengths above (a server
   whose answers differ in length). Wall time measured. llama.cpp's server is used when installed.

    python benchmarks/bench_llm_seam.py --database data/build/demo.duckdb
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from and_engine.backends.llm import CachedLLM, run_round  # noqa: E402
from and_engine.backends.llm_exec import LocalExecutor, commit_size  # noqa: E402
from and_engine.backends.registry import make  # noqa: E402
from and_engine.config import LLMConfig  # noqa: E402
from and_engine.stages.summaries import summary_prompts  # noqa: E402
from and_engine.store.results import ResultsStore  # noqa: E402
from and_engine.text.prompts import SUMMARY_TEMPLATE_ID  # noqa: E402

SLICE = 256  # compute_summaries' slice per generate call before the round


class ChunkedCalls(LocalExecutor):
    """Today's behaviour: one ``generate`` call per chunk, whatever the backend can stream."""

    def run(self, llm, prompts, chunk):
        for start in range(0, len(prompts), chunk):
            yield list(zip(range(start, start + chunk), llm.generate(prompts[start : start + chunk])))


def answer_tokens(prompt: str, mean: float, cap: int = 1024) -> int:
    """A seeded log-normal answer length (sigma 0.6) with the given mean, from the prompt's hash."""
    seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    sigma = 0.6
    value = np.random.default_rng(seed).lognormal(np.log(mean) - sigma**2 / 2, sigma)
    return int(min(max(value, 1), cap))


def engine_seconds(lengths: list[int], slots: int, base_s: float, per_seq_s: float) -> float:
    """Continuous batching: answers of ``lengths`` tokens start in order as slots free up; each decode step
    advances every running sequence by one token and costs ``base_s + per_seq_s x running`` -> seconds until
    the last answer ends."""
    running: list[int] = []  # decode step at which each running sequence ends
    step, seconds, nxt = 0, 0.0, 0
    while nxt < len(lengths) and len(running) < slots:
        heapq.heappush(running, lengths[nxt])
        nxt += 1
    while running:
        ends = running[0]
        seconds += (ends - step) * (base_s + per_seq_s * len(running))
        step = ends
        while running and running[0] == step:
            heapq.heappop(running)
            if nxt < len(lengths):
                heapq.heappush(running, step + lengths[nxt])
                nxt += 1
    return seconds


class FakeVllm:
    """Records calls; models each call's time as continuous batching (``engine_seconds``)."""

    def __init__(self, slots: int, base_s: float, per_seq_s: float, mean_tokens: float):
        self.slots, self.base_s, self.per_seq_s, self.mean = slots, base_s, per_seq_s, mean_tokens
        self.calls: list[int] = []
        self.modelled_s = 0.0

    def describe(self) -> dict:
        return {"backend": "vllm", "model": "fake-8b", "params": {}}

    def generate(self, prompts: list[str]) -> list[str]:
        self.calls.append(len(prompts))
        lengths = [answer_tokens(p, self.mean) for p in prompts]
        self.modelled_s += engine_seconds(lengths, self.slots, self.base_s, self.per_seq_s)
        return ["1. A fixed answer of the fake engine."] * len(prompts)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        with srv.slots:  # at most server_concurrency requests are served at once
            delay = srv.delay_s if srv.fixed else answer_tokens(prompt, srv.mean) * srv.per_token_s
            time.sleep(delay)
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": "1. A served answer."}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops bursts of connections (1 s SYN retries)


def start_server(concurrency: int, delay_s: float, fixed: bool, mean_tokens: float) -> ThreadingHTTPServer:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.slots, srv.delay_s, srv.fixed = threading.BoundedSemaphore(concurrency), delay_s, fixed
    srv.mean, srv.per_token_s = mean_tokens, delay_s / mean_tokens
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def load_prompts(database: Path, model: str, layers: list[str]) -> dict[str, list[str]]:
    """{layer: its summary prompts (two per neuron)} from a built database, as the summaries step builds them."""
    with ResultsStore(database, read_only=True) as store:
        captions = store.read("captions", ["clip_id", "caption"], order_by=["clip_id"])
        names = layers or store.read("layers", ["layer"], order_by=["block", "layer"], model=model)["layer"].tolist()
        return {layer: summary_prompts(store.read("extremes", model=model, layer=layer, order_by=["neuron"]),
                                       captions)["prompt"].tolist() for layer in names}


def run(way: str, llm, cfg: LLMConfig, per_layer: dict[str, list[str]], folder: Path) -> float:
    """Send every layer's prompts ``way`` ('chunked' | 'round') into a fresh llm_cache -> wall seconds."""
    db = folder / f"{way}-{time.monotonic_ns()}.duckdb"
    with ResultsStore(db) as store:
        t0 = time.perf_counter()
        if way == "chunked":
            cached = CachedLLM(llm, store.cache_get, store.cache_put, SUMMARY_TEMPLATE_ID,
                               chunk_size=max(cfg.batch_size, 1) * 4, executor=ChunkedCalls())
            for prompts in per_layer.values():
                for s in range(0, len(prompts), SLICE):
                    cached.generate(prompts[s : s + SLICE])
        else:
            cached = CachedLLM(llm, store.cache_get, store.cache_put, SUMMARY_TEMPLATE_ID,
                               chunk_size=commit_size(cfg))
            run_round([(cached, [p for prompts in per_layer.values() for p in prompts])])
        seconds = time.perf_counter() - t0
        assert store.count("llm_cache") == len({p for ps in per_layer.values() for p in ps})
    db.unlink()
    return seconds


def describe_calls(calls: list[int]) -> str:
    return (f"{len(calls)} call(s), prompts per call: mean {np.mean(calls):.0f}, max {max(calls)}"
            if calls else "0 calls")


def bench_fake(per_layer, args, folder: Path) -> None:
    cfg = LLMConfig(backend="vllm", batch_size=args.client_concurrency)
    print(f"\n1. recording fake of vLLM, modelled engine: {args.max_num_seqs} sequences at once, a decode step "
          f"{args.step_ms:.0f} ms + {args.step_ms_per_seq:.2f} ms per running sequence, answers log-normal mean "
          f"{args.mean_tokens:.0f} tokens (cap 1,024), prefill not modelled")
    times = {}
    for way in ("chunked", "round"):
        fake = FakeVllm(args.max_num_seqs, args.step_ms / 1000, args.step_ms_per_seq / 1000, args.mean_tokens)
        run(way, fake, cfg, per_layer, folder)
        times[way] = fake.modelled_s
        print(f"   {way:<8} {describe_calls(fake.calls)}; modelled engine time {fake.modelled_s / 60:.1f} min")
    print(f"   round is {times['chunked'] / times['round']:.2f}x faster (modelled)")


def bench_server(per_layer, args, folder: Path) -> None:
    n = args.server_prompts
    subset, left = {}, n
    for layer, prompts in per_layer.items():  # the first n prompts, layer by layer
        if left > 0:
            subset[layer], left = prompts[:left], left - len(prompts[:left])
    total = sum(len(p) for p in subset.values())
    for fixed in (True, False):
        srv = start_server(args.server_concurrency, args.delay_ms / 1000, fixed, args.mean_tokens)
        what = (f"fixed {args.delay_ms:.0f} ms per request" if fixed else
                f"per-request delay ~ answer length (mean {args.delay_ms:.0f} ms, log-normal)")
        print(f"\n2. local OpenAI-compatible server: {what}, at most {args.server_concurrency} served at once; "
              f"openai backend, batch_size {args.client_concurrency}; {total} prompts of {len(subset)} layer(s)")
        cfg = LLMConfig(backend="openai", model="served", base_url=f"http://127.0.0.1:{srv.server_port}",
                        batch_size=args.client_concurrency)
        times = {}
        for way in ("chunked", "round"):
            llm = make("llm", "openai", cfg)
            calls: list[int] = []
            original = llm.generate
            llm.generate = lambda ps, f=original, c=calls: (c.append(len(ps)), f(ps))[1]
            times[way] = run(way, llm, cfg, subset, folder)
            shown = describe_calls(calls) if calls else "1 request list, streamed"
            print(f"   {way:<8} {shown}; wall time {times[way]:.2f} s")
        print(f"   round is {times['chunked'] / times['round']:.2f}x faster (measured)")
        srv.shutdown()
        srv.server_close()
    if shutil.which("llama-server") is None:
        print("\n3. llama.cpp server: not installed here (llama-server not on PATH), skipped")
    else:
        print("\n3. llama.cpp server: installed, but this benchmark does not start it yet (no model chosen)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database", type=Path, default=ROOT / "data" / "build" / "demo.duckdb")
    ap.add_argument("--model", default="yamnet")
    ap.add_argument("--layers", nargs="*", default=[], help="default: every layer of the model")
    ap.add_argument("--max-num-seqs", type=int, default=256, help="vLLM's max_num_seqs (its default)")
    ap.add_argument("--step-ms", type=float, default=10.0, help="modelled decode step, fixed part (ms)")
    ap.add_argument("--step-ms-per-seq", type=float, default=0.06, help="modelled decode step, per sequence (ms)")
    ap.add_argument("--mean-tokens", type=float, default=200.0, help="mean answer length (tokens)")
    ap.add_argument("--client-concurrency", type=int, default=8, help="llm.batch_size (the default is 8)")
    ap.add_argument("--server-concurrency", type=int, default=64)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--server-prompts", type=int, default=2000)
    args = ap.parse_args()
    if not args.database.exists():
        sys.exit(f"{args.database} does not exist: build the demo first (bash run.sh) or pass --database")
    per_layer = load_prompts(args.database, args.model, args.layers)
    n = sum(len(p) for p in per_layer.values())
    unique = len({p for ps in per_layer.values() for p in ps})
    print(f"{args.model}: {len(per_layer)} layer(s), {n:,} summary prompts, {unique:,} unique "
          f"(database {args.database})")
    with tempfile.TemporaryDirectory() as tmp:
        bench_fake(per_layer, args, Path(tmp))
        bench_server(per_layer, args, Path(tmp))


if __name__ == "__main__":
    main()
