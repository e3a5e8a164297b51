"""Benchmark: the activations stage vs the paper-style baseline, measured in the same run.

Baseline (what the paper's code does): batch size 1, hooks that keep every layer's full output for
every clip, pooling at the end. Ours: batched forward passes, pooling inside the hooks into
preallocated (n_clips, n_neurons) arrays; "-bf16" = under bfloat16 autocast; "compiled" = through
torch.compile (its first batch compiles: "1st batch s"; "steady" = clips/s after it). Both use the same
front end (the model's ``preprocess``), the baseline one clip at a time. Each measurement runs in a fresh
subprocess so its peak resident memory (ru_maxrss) is its own; "growth" = peak minus the RSS after
loading the model; "cpu-ratio" compares clips per CPU-second of the process (less sensitive to other
jobs on a shared machine than wall time).

    python benchmarks/bench_activations.py                 # YAMNet 32/64 clips, AST-base 4/8 clips
    python benchmarks/bench_activations.py --yamnet 32 64 --ast 8 16 --threads 1 --ast-batch-size 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


MODES = ("baseline", "ours", "ours-bf16", "compiled", "compiled-bf16")  # baseline first: it saves the reference
AST_MODES = MODES[:3]  # torch.compile of AST-base: not measured (compile time and memory on this 2-core machine)


class _Clock:
    """A ``progress`` object: the time its first batch finished (compile included when compiled)."""

    def __init__(self, t0: float):
        self.t0, self.first, self.done = t0, None, 0

    def update(self, n: int) -> None:
        self.done += n
        if self.first is None:
            self.first, self.first_n = time.perf_counter(), n


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _model(kind: str):
    if kind == "yamnet":
        from and_engine.models.yamnet import load_pretrained_yamnet

        return load_pretrained_yamnet()
    import torch
    import transformers as tr

    from and_engine.models.ast import make_ast_target

    torch.manual_seed(0)
    config = tr.ASTConfig(num_labels=50)  # AST-base: 12 blocks, 768 hidden, 3072 MLP, 12 x 101 patches
    return make_ast_target(tr.ASTForAudioClassification(config).eval(), tr.ASTFeatureExtractor(), "ast-base", "ast")


def _baseline(model, waves, layers):
    """Batch 1, store every full layer output, pool afterwards (token 0 / mean over positions)."""
    import numpy as np
    import torch

    from and_engine.stages.activations import pool_output

    kept = {s.name: [] for s in layers}
    hooks = [model.submodule(s).register_forward_hook(
        lambda _m, _i, out, s=s: kept[s.name].append(out.detach().clone())) for s in layers]
    with torch.no_grad():
        for i in range(len(waves)):
            model.module(model.preprocess(waves[i : i + 1]))
    for h in hooks:
        h.remove()
    return {s.name: np.concatenate([pool_output(o, s, 1, "cls").numpy() for o in kept[s.name]]) for s in layers}


def _compare(flat, ref_path: str | None, mode: str) -> tuple[float, float]:
    """The baseline saves its activations to ``ref_path``; other modes -> (correlation, max |diff| / max |u|)."""
    import numpy as np

    if not ref_path:
        return float("nan"), float("nan")
    if mode == "baseline":
        np.save(ref_path, flat)
        return 1.0, 0.0
    ref = np.load(ref_path)
    return float(np.corrcoef(ref, flat)[0, 1]), float(np.abs(ref - flat).max() / np.abs(ref).max())


def measure(kind: str, mode: str, n_clips: int, threads: int, batch_size: int, ref_path: str | None = None) -> dict:
    """One measurement in this process -> {clips_per_s, peak_mb, growth_mb, ...}."""
    import numpy as np
    import torch

    from and_engine.stages.activations import record_activations

    torch.set_num_threads(threads)
    model = _model(kind)
    layers = model.layers()
    waves = np.random.default_rng(0).normal(0, 0.1, (n_clips, 80000)).astype(np.float32)
    model.logits(waves[:1])  # warm-up (allocator, feature extractor) before the RSS reference
    rss0 = _rss_mb()
    t0, cpu0 = time.perf_counter(), time.process_time()
    clock = _Clock(t0)
    if mode != "baseline":
        precision = "bfloat16" if mode.endswith("bf16") else "float32"
        out = record_activations(model, waves, layers, "cls", batch_size, progress=clock, precision=precision,
                                 compiled=mode.startswith("compiled"))
    else:
        out = _baseline(model, waves, layers)
    seconds, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    # compiled: the rate after the first batch (which compiles), what a large probing set sees
    compiled = mode.startswith("compiled") and clock.first is not None and n_clips > clock.first_n
    steady = (n_clips - clock.first_n) / (time.perf_counter() - clock.first) if compiled else n_clips / seconds
    flat = np.concatenate([out[s.name].ravel() for s in layers])
    return {"kind": kind, "mode": mode, "n_clips": n_clips, "seconds": round(seconds, 2),
            "clips_per_s": round(n_clips / seconds, 3), "clips_per_cpu_s": round(n_clips / cpu_s, 3),
            "steady_clips_per_s": round(steady, 3),
            "first_batch_s": round((clock.first or t0) - t0, 2), "peak_mb": round(_rss_mb()),
            "growth_mb": round(_rss_mb() - rss0),
            "neurons": sum(s.n_neurons for s in layers), "corr": _compare(flat, ref_path, mode),
            "checksum": float(np.abs(flat).sum())}


def _run(kind: str, mode: str, n: int, threads: int, batch_size: int, ref_path: str = "") -> dict:
    cmd = [sys.executable, __file__, "--one", kind, mode, str(n), "--threads", str(threads),
           "--batch-size", str(batch_size), "--ref", ref_path]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        raise RuntimeError(f"{kind} {mode} {n}: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yamnet", type=int, nargs="*", default=[32, 64], help="clip counts for YAMNet")
    ap.add_argument("--ast", type=int, nargs="*", default=[4, 8], help="clip counts for AST-base (slow on CPU)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4, help="our batch size for YAMNet (and --one)")
    ap.add_argument("--ast-batch-size", type=int, default=1, help="our batch size for AST-base")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats per mode; the fastest is kept")
    ap.add_argument("--one", nargs=3, metavar=("KIND", "MODE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--ref", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kind, mode, n = args.one
        print(json.dumps(measure(kind, mode, int(n), args.threads, args.batch_size, args.ref)))
        return
    print(f"threads={args.threads} batch sizes: yamnet {args.batch_size}, ast {args.ast_batch_size}; baseline 1; "
          f"best of {args.repeats} interleaved runs; peak = max over runs; load average {os.getloadavg()}")
    print(f"{'model':6} {'clips':>5} {'neurons':>7} | {'mode':13} {'clips/s':>7} {'ratio':>5} | {'cpu-ratio':>9} | "
          f"{'steady':>6} {'ratio':>5} {'1st batch s':>11} | {'peak/growth MB':>14} | corr, max rel diff vs baseline")
    tmp = tempfile.mkdtemp(prefix="bench_activations_")
    for kind, counts, batch, modes in (("yamnet", args.yamnet, args.batch_size, MODES),
                                       ("ast", args.ast, args.ast_batch_size, AST_MODES)):
        for n in counts:
            ref = str(Path(tmp) / f"{kind}_{n}.npy")
            runs: dict[str, list[dict]] = {mode: [] for mode in modes}
            for _ in range(max(1, args.repeats)):  # interleaved, so load changes hit every mode alike
                for mode in modes:
                    runs[mode].append(_run(kind, mode, n, args.threads, batch, ref))
            best = {mode: {**max(rs, key=lambda r: r["clips_per_s"]), "peak_mb": max(r["peak_mb"] for r in rs),
                           "growth_mb": max(r["growth_mb"] for r in rs),
                           "clips_per_cpu_s": max(r["clips_per_cpu_s"] for r in rs),
                           "steady_clips_per_s": max(r["steady_clips_per_s"] for r in rs),
                           "first_batch_s": max(r["first_batch_s"] for r in rs)} for mode, rs in runs.items()}
            base = best["baseline"]
            for mode in modes:
                r = best[mode]
                print(f"{kind:6} {n:>5} {r['neurons']:>7} | {mode:13} {r['clips_per_s']:>7.2f} "
                      f"{r['clips_per_s'] / base['clips_per_s']:>4.1f}x | "
                      f"{r['clips_per_cpu_s'] / base['clips_per_cpu_s']:>8.1f}x | "
                      f"{r['steady_clips_per_s']:>6.2f} {r['steady_clips_per_s'] / base['steady_clips_per_s']:>4.1f}x "
                      f"{r['first_batch_s']:>11.2f} | {r['peak_mb']:>6}/{r['growth_mb']:<7} | "
                      f"{r['corr'][0]:.6f}, {r['corr'][1]:.1e}", flush=True)
    print(f"load average at the end {os.getloadavg()}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
