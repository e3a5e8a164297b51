"""Benchmark: the activations stage vs the paper-style baseline, measured in the same run.

Baseline (what the paper's code does): batch size 1, hooks that keep every layer's full output for
every clip, pooling at the end. Ours: batched forward passes, pooling inside the hooks into
preallocated (n_clips, n_neurons) arrays. Each measurement runs in a fresh subprocess so its peak
resident memory (ru_maxrss) is its own; "growth" = peak minus the RSS after loading the model.

    python benchmarks/bench_activations.py                 # YAMNet 32/64 clips, AST-base 8/16 clips
    python benchmarks/bench_activations.py --yamnet 32 64 --ast 8 16 --threads 1 --ast-batch-size 4
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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


def measure(kind: str, mode: str, n_clips: int, threads: int, batch_size: int) -> dict:
    """One measurement in this process -> {clips_per_s, peak_mb, growth_mb, ...}."""
    import numpy as np
    import torch

    from and_engine.stages.activations import record_activations

    torch.set_num_threads(threads)
    model = _model(kind)
    layers = model.layers()
    waves = np.random.default_rng(0).normal(0, 0.1, (n_clips, 80000)).astype(np.float32)
    model.logits(waves[:1])  # warm-up (allocator, feature extractor) before the RSS reference
    ref = _rss_mb()
    t0 = time.perf_counter()
    if mode == "ours":
        out = record_activations(model, waves, layers, "cls", batch_size)
    else:
        out = _baseline(model, waves, layers)
    seconds = time.perf_counter() - t0
    checksum = float(sum(float(np.abs(v).sum()) for v in out.values()))
    return {"kind": kind, "mode": mode, "n_clips": n_clips, "seconds": round(seconds, 2),
            "clips_per_s": round(n_clips / seconds, 3), "peak_mb": round(_rss_mb()), "growth_mb": round(_rss_mb() - ref),
            "neurons": sum(s.n_neurons for s in layers), "checksum": checksum}


def _run(kind: str, mode: str, n: int, threads: int, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--one", kind, mode, str(n), "--threads", str(threads), "--batch-size", str(batch_size)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yamnet", type=int, nargs="*", default=[32, 64], help="clip counts for YAMNet")
    ap.add_argument("--ast", type=int, nargs="*", default=[8, 16], help="clip counts for AST-base (slow on CPU)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16, help="our batch size for YAMNet (and --one)")
    ap.add_argument("--ast-batch-size", type=int, default=4, help="our batch size for AST-base")
    ap.add_argument("--one", nargs=3, metavar=("KIND", "MODE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kind, mode, n = args.one
        print(json.dumps(measure(kind, mode, int(n), args.threads, args.batch_size)))
        return
    print(f"threads={args.threads} batch sizes: yamnet {args.batch_size}, ast {args.ast_batch_size}; baseline 1")
    print(f"{'model':8} {'clips':>5} {'neurons':>7} | {'ours clips/s':>12} {'base clips/s':>12} {'ratio':>6} | "
          f"{'ours peak/growth MB':>19} {'base peak/growth MB':>19} | same u")
    for kind, counts, batch in (("yamnet", args.yamnet, args.batch_size), ("ast", args.ast, args.ast_batch_size)):
        for n in counts:
            ours = _run(kind, "ours", n, args.threads, batch)
            base = _run(kind, "baseline", n, args.threads, batch)
            same = abs(ours["checksum"] - base["checksum"]) <= 1e-3 * max(1.0, abs(base["checksum"]))
            print(f"{kind:8} {n:>5} {ours['neurons']:>7} | {ours['clips_per_s']:>12.3f} {base['clips_per_s']:>12.3f} "
                  f"{ours['clips_per_s'] / base['clips_per_s']:>5.1f}x | {ours['peak_mb']:>9}/{ours['growth_mb']:<9} "
                  f"{base['peak_mb']:>9}/{base['growth_mb']:<9} | {same}", flush=True)


if __name__ == "__main__":
    main()
