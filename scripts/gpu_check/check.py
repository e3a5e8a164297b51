"""The GPU check (``bash scripts/gpu_check.sh``): tiny random models of the real classes (AST, Qwen2-Audio, a
Qwen2 LLM, CLAP, CLIP, a sentence-transformers encoder) saved to a temporary folder, one small build through
the GPU paths (activations and maps on the device, audio-LLM captions, vLLM or transformers summaries, CLIP /
CLAP / sentence encoders on the device), per-step times and GPU memory; ``--scale``: AST-base size with random
weights on generated clips (2,000 by default), activations and map passes timed. ``--cpu``: the same code
paths on the CPU (a dry run where no GPU is at hand; ``--scale`` then uses a few clips).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _mib(device: str) -> str:
    import torch

    if not device.startswith("cuda"):
        return "-"
    peak = torch.cuda.max_memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    return f"{peak:,.0f}"


def _environment(device: str) -> None:
    import torch
    import transformers

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        print(f"device: {props.name}, {props.total_memory / 2**30:.1f} GiB, CUDA {torch.version.cuda}, "
              f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        print("device: cpu (--cpu dry run: the GPU code paths on the CPU)")


def _write_clips(folder: Path, labels: list[str], per_label: int, seconds: float, rate: int = 16000) -> None:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for li, label in enumerate(labels):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            wave = 0.3 * np.sin(2 * np.pi * (200 + 700 * li + 50 * i) * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(folder / label / f"{label}-{i}.wav", wave.astype(np.float32), rate)


def tiny_build(device: str, folder: Path) -> int:
    """Save the tiny models, build a small config through the GPU paths (until dissect), print step times."""
    import tiny_models

    from and_engine.config import config_from_dict
    from and_engine.pipeline.build import build
    from and_engine.pipeline.core import Progress

    labels, seconds = ["dog", "rain", "engine", "bird"], 2.0
    t0 = time.perf_counter()
    _write_clips(folder / "clips", labels, 3, seconds)
    paths = {name: save(folder / name) for name, save in (
        ("qwen2-audio", tiny_models.save_qwen2_audio), ("llm", tiny_models.save_causal_lm),
        ("clap", tiny_models.save_clap), ("clip", tiny_models.save_clip),
        ("sentence", tiny_models.save_sentence_transformer))}
    paths["ast"] = tiny_models.save_ast(folder / "ast", labels, seconds)
    print(f"tiny models and {len(labels) * 3} clips saved to {folder} in {time.perf_counter() - t0:.1f} s")
    vllm = importlib.util.find_spec("vllm") is not None and device.startswith("cuda")
    llm = {"backend": "vllm", "model": str(paths["llm"]), "max_model_len": 2048, "gpu_memory_utilization": 0.5,
           "max_new_tokens": 16} if vllm else {"backend": "transformers", "model": str(paths["llm"]),
                                               "device": device, "max_new_tokens": 16, "batch_size": 16}
    if not vllm:
        print("vllm is not installed here (or --cpu): summaries run on the transformers LLM backend instead")
    config = config_from_dict({
        "run": {"name": "gpu-check", "database": str(folder / "check.duckdb"),
                "ratings_database": str(folder / "ratings.duckdb"), "cache_dir": str(folder / "cache")},
        "probing_set": {"kind": "folder", "path": str(folder / "clips"), "clip_seconds": seconds},
        "models": [{"name": "tiny-ast", "kind": "ast-checkpoint", "checkpoint": str(paths["ast"])}],
        "activations": {"device": device, "batch_size": 8},
        "captions": {"backend": "audio-llm", "model_path": str(paths["qwen2-audio"]), "device": device,
                     "max_new_tokens": 8, "batch_size": 6},
        "summaries": {"llm": llm},
        "module_a": {"text_encoder": f"clip:{paths['clip']}", "audio_text_model": f"clap:{paths['clap']}"},
        "module_b": {"sentence_encoder": f"sentence-transformers:{paths['sentence']}"},
        "module_c": {"tagger": "textblob"},
        "device": {"text_encoders": device, "audio_text": device},
    })

    class Timed(Progress):
        def __init__(self):
            super().__init__(quiet=True)
            self.rows: list[tuple[str, str]] = []

        def log(self, msg: str) -> None:
            super().log(msg)
            if " rows in " in msg:
                self.rows.append((msg, _mib(device)))

    progress = Timed()
    t0 = time.perf_counter()
    result = build(config, progress, until="dissect")
    total = time.perf_counter() - t0
    print(f"\n{'step (rows, seconds)':<72} peak GPU MiB")
    for msg, mem in progress.rows:
        print(f"{msg:<72} {mem}")
    print(f"build: {len(result.executed)} steps in {total:.1f} s (llm: {llm['backend']})")
    return 0


def scale(device: str, n_clips: int, batch_size: int) -> int:
    """AST-base size (random weights, ESC-50 recipe front end: 128 mel x 512 frames) on ``n_clips`` generated
    5 s clips: activations of every layer (55,346 neurons) and the activation-map pass, timed."""
    import numpy as np
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    from and_engine.models.ast import make_ast_target
    from and_engine.stages.activations import record_activations, record_maps
    from and_engine.stages.extremes import topk_bottomk

    torch.manual_seed(0)
    labels = [f"class{i}" for i in range(50)]
    hf = ASTForAudioClassification(ASTConfig(num_labels=50, max_length=512))
    fe = ASTFeatureExtractor(max_length=512, mean=-6.6268077, std=5.358466)
    target = make_ast_target(hf, fe, "ast-base", "ast-checkpoint", labels).to(device)
    layers = target.layers()
    waves = (0.1 * np.random.default_rng(0).standard_normal((n_clips, 80000))).astype(np.float32)
    print(f"AST-base: {sum(s.n_neurons for s in layers):,} neurons in {len(layers)} layers, {n_clips} clips of 5 s, "
          f"batch {batch_size}, {device}")
    _mib(device)
    t0 = time.perf_counter()
    acts = record_activations(target, waves, layers, batch_size=batch_size)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_act = time.perf_counter() - t0
    print(f"activations: {t_act:.1f} s ({n_clips / t_act:.1f} clips/s), peak GPU MiB {_mib(device)}")
    grid = [s for s in layers if s.map_freq]
    top = {s.name: topk_bottomk(acts[s.name], min(5, n_clips))[0] for s in grid}
    t0 = time.perf_counter()
    maps = record_maps(target, waves, grid, top, batch_size=batch_size)
    t_maps = time.perf_counter() - t0
    kept = sum(m.nbytes for m in maps.values()) / 2**20
    print(f"activation maps: {t_maps:.1f} s over {len(np.unique(np.concatenate([t.ravel() for t in top.values()])))} "
          f"top-K clips, {kept:,.0f} MiB kept on the host, peak GPU MiB {_mib(device)}")
    if n_clips < 2000:
        k = 2000 / n_clips
        print(f"at 2,000 clips (linear): activations ~{t_act * k:.0f} s, maps ~{t_maps * k:.0f} s")
    _pruning(target, waves[: min(400, n_clips)], layers, batch_size, device)
    return 0


def _pruning(target, waves, layers, batch_size: int, device: str) -> None:
    """The pruning engine on ``device`` (ESC-50's held-out fold is 400 clips): front end + baseline once, then
    8 selections of 10 units of a middle layer; each pruned result must differ from the baseline and a repeated
    selection must give the same logits (masks in the forward pass, nothing left behind)."""
    import numpy as np
    import torch

    from and_engine.analyses.pruning_engine import PruningEngine

    t0 = time.perf_counter()
    engine = PruningEngine(target, waves, batch_size=batch_size)
    t_base = time.perf_counter() - t0
    layer = layers[len(layers) // 2]
    sels = [{layer.name: list(range(10 * i, 10 * i + 10))} for i in range(8)]
    t0 = time.perf_counter()
    out = engine.logits(sels + sels[:1])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_pr = time.perf_counter() - t0
    change = [float(np.abs(o - engine.baseline).max()) for o in out[:8]]
    same = bool(np.array_equal(out[0], out[8]))
    print(f"pruning engine: {len(waves)} clips, front end + baseline {t_base:.1f} s; 9 selections of 10 units of "
          f"{layer.name} {t_pr:.1f} s; max |logit change| per selection {min(change):.2e}..{max(change):.2e}; "
          f"a repeated selection gives the same logits: {same}; peak GPU MiB {_mib(device)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", action="store_true", help="run the same code paths on the CPU (dry run)")
    ap.add_argument("--scale", action="store_true", help="AST-base timing on generated clips instead")
    ap.add_argument("--clips", type=int, default=0, help="--scale: clips (default 2000, 4 with --cpu)")
    ap.add_argument("--batch-size", type=int, default=0, help="--scale: clips per batch (default 64, 2 with --cpu)")
    args = ap.parse_args(argv)
    import torch

    device = "cpu" if args.cpu else "cuda"
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device is visible to torch; run with --cpu for a dry run", file=sys.stderr)
        return 2
    _environment(device)
    t0 = time.perf_counter()
    if args.scale:
        rc = scale(device, args.clips or (4 if args.cpu else 2000), args.batch_size or (2 if args.cpu else 64))
    else:
        with tempfile.TemporaryDirectory(prefix="and-gpu-check-") as tmp:
            rc = tiny_build(device, Path(tmp))
    print(f"gpu check {'(--cpu) ' if args.cpu else ''}finished in {time.perf_counter() - t0:.1f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
