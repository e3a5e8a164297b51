"""Benchmark: ``[execution] engine = "ray"`` against ``local`` on this machine, and the driver's memory at scale.

1. **demo stages, local vs Ray**: the demo's activations (every dissected layer of the configured models,
   checkpoints from ``run.cache_dir``) and the demo's LLM round 1 (every summary prompt of the built demo
   database, rule backend, into a fresh ``llm_cache``), once in this process and once on a local Ray with
   ``--workers`` actors (1 CPU each). Prints wall times and the ratio Ray / local (> 1 = Ray is slower);
   the Ray figure includes starting the actors and shipping the model once per stage, not ``ray.init``.
2. **synthetic scale**: ``--clips`` generated clips (seeded noise + tones, ``--seconds`` long, made by the
   workers: no files) through YAMNet's activations on Ray; the driver's resident memory (RSS) is sampled
   every 0.25 s and printed at each 10 % of the clips, with the size of the output arrays it fills.

    python benchmarks/bench_ray.py --config configs/demo.toml --database data/build/demo.duckdb
    python benchmarks/bench_ray.py --skip-demo --clips 20000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from and_engine.backends.llm import CachedLLM, run_round  # noqa: E402
from and_engine.backends.llm_exec import commit_size  # noqa: E402
from and_engine.backends.registry import make  # noqa: E402
from and_engine.config import ExecutionConfig, StageResources, load_config  # noqa: E402
from and_engine.stages.summaries import summary_prompts  # noqa: E402
from and_engine.store.results import ResultsStore  # noqa: E402
from and_engine.text.prompts import SUMMARY_TEMPLATE_ID  # noqa: E402


def rss_mb() -> float:
    """This process's resident memory now (not the peak), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class GeneratedClips:
    """A clip source made by the workers: clip i = seeded noise + two tones (no files, no driver memory)."""

    def __init__(self, sample_rate: int, seconds: float):
        self.sample_rate, self.seconds = sample_rate, seconds

    def load(self, clip_ids):
        n = int(round(self.sample_rate * self.seconds))
        t = np.arange(n) / self.sample_rate
        out = np.empty((len(clip_ids), n), dtype=np.float32)
        for row, i in enumerate(clip_ids):
            rng = np.random.default_rng(int(i))
            f1, f2 = rng.uniform(80, 4000, 2)
            tones = 0.3 * np.sin(2 * np.pi * f1 * t) + 0.2 * np.sin(2 * np.pi * f2 * t)
            out[row] = 0.1 * rng.standard_normal(n) + tones
        return out


def _ray(workers: int):
    import ray

    from and_engine.ray_runtime import worker_env

    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, runtime_env=worker_env(False))
    print(f"ray.init ({workers} CPUs): {time.perf_counter() - t0:.1f} s (not counted below)")
    return ray


def demo_activations(config_path: str, execution: ExecutionConfig, models: list[str]) -> list[tuple[str, float, float]]:
    """Per model: (name, local s, Ray s) of the activations of its dissected layers over the probing set."""
    from and_engine.cluster.activations import clip_files, record_activations_ray
    from and_engine.models.registry import load_target_model
    from and_engine.pipeline.core import Progress
    from and_engine.pipeline.steps_models import selected_layers
    from and_engine.probing import open_probing_set
    from and_engine.stages.activations import record_activations

    cfg = load_config(config_path)
    acfg, ps = cfg.activations, open_probing_set(cfg.probing_set, cfg.resolve(cfg.probing_set.path))
    out = []
    for model_cfg in [m for m in cfg.models if not models or m.name in models]:
        waves: dict[int, np.ndarray] = {}

        def wave(sr, waves=waves):
            if sr not in waves:
                waves[sr] = ps.load_waveforms(sr, cfg.probing_set.clip_seconds)
            return waves[sr]

        target, _ = load_target_model(model_cfg, cfg, ps, wave, Progress(quiet=True))
        layers = selected_layers(target, model_cfg.layers)
        t0 = time.perf_counter()
        local = record_activations(target, wave(target.sample_rate), layers, acfg.pool, acfg.batch_size,
                                   precision=acfg.precision)
        t_local = time.perf_counter() - t0
        t0 = time.perf_counter()
        source = clip_files(ps, target.sample_rate, cfg.probing_set.clip_seconds)
        remote = record_activations_ray(execution, execution.activations, target, source, len(ps.clips), layers,
                                        acfg.pool, acfg.batch_size, acfg.precision)
        t_ray = time.perf_counter() - t0
        assert all(np.array_equal(local[s.name], remote[s.name]) for s in layers), "Ray and local differ"
        out.append((model_cfg.name, t_local, t_ray))
        print(f"activations {model_cfg.name:18s} {len(ps.clips)} clips x {len(layers)} layers: local {t_local:6.1f} s"
              f"   ray {t_ray:6.1f} s   ratio {t_ray / t_local:5.2f}", flush=True)
    return out


def demo_llm(database: str, execution: ExecutionConfig) -> tuple[int, float, float]:
    """(prompts, local s, Ray s) of round 1 (every summary prompt of the demo database), rule backend."""
    with ResultsStore(database, read_only=True) as store:
        captions = store.read("captions", ["clip_id", "caption"], order_by=["clip_id"])
        layers = store.read("layers", ["model", "layer"])
        prompts = []
        for m, layer in layers.itertuples(index=False):
            ext = store.read("extremes", model=m, layer=layer, order_by=["neuron"])
            prompts += summary_prompts(ext, captions)["prompt"].tolist()
    times = []
    for engine in ("local", "ray"):
        with tempfile.TemporaryDirectory() as tmp, ResultsStore(Path(tmp) / "cache.duckdb") as cache:
            llm_cfg = load_config(ROOT / "configs" / "demo.toml").summaries.llm
            executor = make("llm_executor", engine, {"execution": execution})
            cached = CachedLLM(make("llm", "rule", llm_cfg), cache.cache_get, cache.cache_put, SUMMARY_TEMPLATE_ID,
                               commit_size(llm_cfg), executor)
            t0 = time.perf_counter()
            stats = run_round([(cached, prompts)])
            times.append(time.perf_counter() - t0)
    print(f"LLM round 1 (rule): {len(prompts)} prompts, {stats.sent} unique sent: local {times[0]:6.1f} s   "
          f"ray {times[1]:6.1f} s   ratio {times[1] / times[0]:5.2f}", flush=True)
    return len(prompts), times[0], times[1]


def synthetic(n_clips: int, seconds: float, execution: ExecutionConfig, layers_n: int) -> None:
    """``n_clips`` generated clips through YAMNet's activations on Ray; the driver's RSS over time."""
    from and_engine.cluster.activations import record_activations_ray
    from and_engine.models.yamnet import load_pretrained_yamnet

    target = load_pretrained_yamnet(clip_seconds=seconds)
    layers = target.layers()[-layers_n:]
    out_mb = n_clips * sum(s.n_neurons for s in layers) * 4 / 2**20
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.perf_counter(), rss_mb()))
            time.sleep(0.25)

    class Marks:
        def __init__(self):
            self.done, self.next = 0, 0.1

        def update(self, n):
            self.done += n
            while self.done >= self.next * n_clips:
                print(f"  {self.done:6d}/{n_clips} clips  {time.perf_counter() - t0:7.1f} s  driver RSS "
                      f"{rss_mb():7.1f} MB", flush=True)
                self.next += 0.1

    before = rss_mb()
    print(f"synthetic: {n_clips} generated {seconds} s clips, YAMNet layers {[s.name for s in layers]}, "
          f"output arrays {out_mb:.1f} MB; driver RSS before {before:.1f} MB", flush=True)
    thread = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    thread.start()
    arrays = record_activations_ray(execution, execution.activations, target, GeneratedClips(16000, seconds),
                                    n_clips, layers, batch_size=32, progress=Marks())
    stop.set()
    thread.join()
    rss = np.array([r for _, r in samples])
    print(f"synthetic done: {time.perf_counter() - t0:.1f} s ({n_clips / (time.perf_counter() - t0):.1f} clips/s); "
          f"driver RSS min {rss.min():.1f} / median {np.median(rss):.1f} / max {rss.max():.1f} MB over "
          f"{len(rss)} samples; max - before = {rss.max() - before:.1f} MB (output arrays {out_mb:.1f} MB); "
          f"finite: {all(np.isfinite(a).all() for a in arrays.values())}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo.toml"))
    ap.add_argument("--database", default=str(ROOT / "data" / "build" / "demo.duckdb"))
    ap.add_argument("--cache-dir", default="", help="checkpoints of the trained variants (run.cache_dir)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clips", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--layers", type=int, default=3, help="YAMNet's last N dissectable layers (synthetic run)")
    ap.add_argument("--models", nargs="*", default=[], help="the demo's models to time (default: all)")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    execution = ExecutionConfig(engine="ray", activations=StageResources(actors=args.workers),
                                llm=StageResources(actors=args.workers))
    _ray(args.workers)
    if not args.skip_demo:
        config = args.config
        if args.cache_dir:  # the demo config with another checkpoint cache (skips training)
            text = Path(config).read_text().replace('cache_dir = "data/cache"', f'cache_dir = "{args.cache_dir}"')
            config = str(Path(tempfile.mkdtemp()) / "demo.toml")
            Path(config).write_text(text)
        acts = demo_activations(config, execution, args.models)
        n, llm_local, llm_ray = demo_llm(args.database, execution)
        local = sum(a[1] for a in acts) + llm_local
        remote = sum(a[2] for a in acts) + llm_ray
        print(f"demo activations + LLM round 1: local {local:.1f} s, ray ({args.workers} workers) {remote:.1f} s, "
              f"overhead ratio ray/local {remote / local:.2f}")
    if not args.skip_synthetic:
        synthetic(args.clips, args.seconds, execution, args.layers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
