"""Benchmark: the activations stage vs the paper-style baseline, measured in the same run.

Baseline (what the paper's code does): batch size 1, hooks that keep every layer's full output for
every clip, pooling at the end. Ours: batched forward passes, pooling inside the hooks into
preallocated (n_clips, n_neurons) arrays. Each measurement runs in a fresh subprocess so its peak
resident memory (ru_maxrss) is its own; "growth" = peak minus the RSS after loading the model.

    python benchmarks/bench_activations.py                 # YAMNet 32/64 clips, AST-base 4/8 clips
    python benchmarks/bench_activations.py --yamnet 32 64 --ast 8 16 --threads 1 --ast-batch-size 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


MODES = ("baseline", "ours", "ours-bf16")  # the baseline runs first: it saves the reference activations


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


def _compare(flat, ref_path: str | None, mode: str) -> float:
    """The baseline saves its activations to ``ref_path``; other modes -> correlation with them."""
    import numpy as np

    if not ref_path:
        return float("nan")
    if mode == "baseline":
        np.save(ref_path, flat)
        return 1.0
    return float(np.corrcoef(np.load(ref_path), flat)[0, 1])


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
    t0 = time.perf_counter()
    if mode in ("ours", "ours-bf16"):
        precision = "bfloat16" if mode == "ours-bf16" else "float32"
        out = record_activations(model, waves, layers, "cls", batch_size, precision=precision)
    else:
        out = _baseline(model, waves, layers)
    seconds = time.perf_counter() - t0
    flat = np.concatenate([out[s.name].ravel() for s in layers])
    return {"kind": kind, "mode": mode, "n_clips": n_clips, "seconds": round(seconds, 2),
            "clips_per_s": round(n_clips / seconds, 3), "peak_mb": round(_rss_mb()), "growth_mb": round(_rss_mb() - rss0),
            "neurons": sum(s.n_neurons for s in layers), "corr": _compare(flat, ref_path, mode),
            "checksum": float(np.abs(flat).sum())}


def _run(kind: str, mode: str, n: int, threads: int, batch_size: int, ref_path: str = "") -> dict:
    cmd = [sys.executable, __file__, "--one", kind, mode, str(n), "--threads", str(threads), "--batch-size", str(batch_size),
           "--ref", ref_path]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yamnet", type=int, nargs="*", default=[32, 64], help="clip counts for YAMNet")
    ap.add_argument("--ast", type=int, nargs="*", default=[4, 8], help="clip counts for AST-base (slow on CPU)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4, help="our batch size for YAMNet (and --one)")
    ap.add_argument("--ast-batch-size", type=int, default=1, help="our batch size for AST-base")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats per mode; the fastest is kept")
    ap.add_argument("--one", nargs=3, metavar=("KIND", "MODE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--ref", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kind, mode, n = args.one
        print(json.dumps(measure(kind, mode, int(n), args.threads, args.batch_size, args.ref)))
        return
    print(f"threads={args.threads} batch sizes: yamnet {args.batch_size}, ast {args.ast_batch_size}; baseline 1; "
          f"best of {args.repeats} interleaved runs; peak = max over runs")
    print(f"{'model':8} {'clips':>5} {'neurons':>7} | {'mode':9} {'clips/s':>8} {'ratio':>6} | {'peak/growth MB':>15} | "
          f"corr(u) vs baseline")
    tmp = tempfile.mkdtemp(prefix="bench_activations_")
    for kind, counts, batch in (("yamnet", args.yamnet, args.batch_size), ("ast", args.ast, args.ast_batch_size)):
        for n in counts:
            ref = str(Path(tmp) / f"{kind}_{n}.npy")
            runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
            for _ in range(max(1, args.repeats)):  # interleaved, so load changes hit every mode alike
                for mode in MODES:
                    runs[mode].append(_run(kind, mode, n, args.threads, batch, ref))
            best = {mode: {**max(rs, key=lambda r: r["clips_per_s"]), "peak_mb": max(r["peak_mb"] for r in rs),
                           "growth_mb": max(r["growth_mb"] for r in rs)} for mode, rs in runs.items()}
            base = best["baseline"]
            for mode in MODES:
                r = best[mode]
                print(f"{kind:8} {n:>5} {r['neurons']:>7} | {mode:9} {r['clips_per_s']:>8.3f} "
                      f"{r['clips_per_s'] / base['clips_per_s']:>5.1f}x | {r['peak_mb']:>6}/{r['growth_mb']:<8} | "
                      f"{r['corr']:.6f}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
