"""Audio Spectrogram Transformer targets (transformers ``ASTForAudioClassification``).

Layers are found by structure, not by module names, so transformers 4.x (``attention.output.dense``,
``intermediate.dense``, ``output.dense``) and 5.x (``attention.o_proj``, ``mlp.fc1``, ``mlp.fc2``) both
work: in each encoder block, MLP fc1 is the Linear hidden -> intermediate, fc2 the Linear intermediate ->
hidden, and the attention output projection the last Linear hidden -> hidden (after q, k, v).
Token layers have a patch grid: sequence index ``token_prefix + p`` with ``f = p // n_time``,
``t = p % n_time`` (``f`` = frequency row, 0 = lowest mel band; ``t`` = time column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from and_engine.models.ast_frontend import ASTFrontEnd
from and_engine.models.base import LayerSpec, ModelError, TargetModel

AST_SAMPLE_RATE = 16000
# log-mel (mean, std) of the AST recipes (github.com/YuanGongND/ast, egs/*/run*.sh: dataset_mean, dataset_std)
NORMALIZATIONS = {"audioset": (-4.2677393, 4.5689974), "esc50": (-6.6268077, 5.358466),
                  "speechcommands": (-6.845978, 5.5654526)}
AST_TOKEN_PREFIX = 2  # CLS + distillation token
# a small AST that trains from scratch on a CPU in minutes (ast-scratch); override via ModelConfig.options
SCRATCH_DEFAULTS = {
    "hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512,
    "num_mel_bins": 64, "max_length": 512, "patch_size": 16, "frequency_stride": 16, "time_stride": 16,
}


def _transformers():
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - transformers is in requirements.txt
        raise ModelError("AST models need the 'transformers' package (pip install transformers)") from exc
    return transformers


def ast_patch_grid(config) -> tuple[int, int]:
    """(n_freq, n_time) patch grid of an ASTConfig (12 x 101 for the standard 128 mel x 1024 frames)."""
    n_freq = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    n_time = (config.max_length - config.patch_size) // config.time_stride + 1
    return n_freq, n_time


def patch_position(p: int, n_time: int) -> tuple[int, int]:
    """Patch index p (token index ``AST_TOKEN_PREFIX + p``) -> (frequency row, time column)."""
    if p < 0:
        raise ModelError(f"patch index must be >= 0, got {p}")
    return p // n_time, p % n_time


class ASTLogits(nn.Module):
    """Wraps an ASTForAudioClassification so ``forward(input_values)`` returns the logits tensor."""

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.hf = hf_model

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.hf(input_values=input_values).logits


def _encoder_blocks(hf_model: nn.Module, n_layers: int) -> list[tuple[str, nn.Module]]:
    for path, module in hf_model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and n_layers > 0:
            if all(any(isinstance(m, nn.Linear) for m in child.modules()) for child in module):
                return [(f"{path}.{i}", child) for i, child in enumerate(module)]
    raise ModelError(f"no list of {n_layers} encoder blocks with Linear layers found in {type(hf_model).__name__}")


def ast_layer_specs(hf_model: nn.Module, prefix: str = "hf") -> list[LayerSpec]:
    """Per block: attention output projection, MLP fc1, MLP fc2 (token layers), then the classifier."""
    cfg = hf_model.config
    hidden, inter = cfg.hidden_size, cfg.intermediate_size
    n_freq, n_time = ast_patch_grid(cfg)
    specs = []
    blocks = _encoder_blocks(hf_model, cfg.num_hidden_layers)
    for i, (bpath, block) in enumerate(blocks):
        lins = [(f"{bpath}.{n}", m) for n, m in block.named_modules() if isinstance(m, nn.Linear)]
        square = [p for p, m in lins if (m.in_features, m.out_features) == (hidden, hidden)]
        up = [p for p, m in lins if (m.in_features, m.out_features) == (hidden, inter)]
        down = [p for p, m in lins if (m.in_features, m.out_features) == (inter, hidden)]
        if not square or len(up) != 1 or len(down) != 1:
            raise ModelError(f"encoder block {bpath}: cannot identify attention output / MLP fc1 / fc2 Linears")
        for name, path, width in ((f"block{i}.attn.out", square[-1], hidden), (f"block{i}.mlp.fc1", up[0], inter),
                                  (f"block{i}.mlp.fc2", down[0], hidden)):
            specs.append(LayerSpec(name, f"{prefix}.{path}", "linear", i, width, n_freq, n_time))
    block_paths = tuple(p for p, _ in blocks)
    heads = [(p, m) for p, m in hf_model.named_modules()
             if isinstance(m, nn.Linear) and m.out_features == cfg.num_labels and not p.startswith(block_paths)]
    if not heads:
        raise ModelError(f"no classifier Linear with {cfg.num_labels} outputs found")
    specs.append(LayerSpec("classifier", f"{prefix}.{heads[-1][0]}", "classifier", len(blocks), cfg.num_labels))
    return specs


def make_ast_target(hf_model: nn.Module, feature_extractor, name: str, kind: str,
                    class_names: list[str] | None = None, description: str = "") -> TargetModel:
    """Wrap an ASTForAudioClassification + its ASTFeatureExtractor as a TargetModel (16 kHz input)."""
    cfg = hf_model.config
    if class_names is None:
        class_names = [cfg.id2label.get(i, str(i)) for i in range(cfg.num_labels)]
    if len(class_names) != cfg.num_labels:
        raise ModelError(f"{name}: {cfg.num_labels} logits but {len(class_names)} class names")
    rate = int(getattr(feature_extractor, "sampling_rate", AST_SAMPLE_RATE))
    frontend = ASTFrontEnd(feature_extractor)

    def preprocess(waveforms: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
        """(n, samples) -> (n, max_length, mel bins) features, computed on ``device`` (default: CPU)."""
        return frontend(torch.from_numpy(np.asarray(waveforms, dtype=np.float32)).to(device or "cpu"))

    hf_model.eval()
    specs = ast_layer_specs(hf_model)
    module = ASTLogits(hf_model)
    stages = ast_stages(hf_model, module)
    return TargetModel(name=name, kind=kind, sample_rate=rate, class_names=list(class_names),
                       module=module, layer_specs=specs,
                       preprocess=preprocess, token_prefix=AST_TOKEN_PREFIX, description=description,
                       preprocess_on_device=True, stages=stages,
                       stage_layers={s.name: s.block + 1 for s in specs} if stages else {})


def ast_stages(hf_model: nn.Module, module: nn.Module) -> list | None:
    """The forward pass as steps: the patch embeddings, each encoder block, then the final layer norm, the mean
    of the two prefix tokens and the classifier (so pruning a block's unit reruns only the blocks from it).
    None when the model is not built like ``ASTForAudioClassification`` or the steps do not give exactly
    ``module``'s logits on a random input (checked once, here)."""
    base = getattr(hf_model, "audio_spectrogram_transformer", None)
    parts = [getattr(base, n, None) for n in ("embeddings", "layernorm")] + [getattr(hf_model, "classifier", None)]
    if base is None or any(p is None for p in parts):
        return None
    embeddings, layernorm, classifier = parts
    blocks = [b for _, b in _encoder_blocks(hf_model, hf_model.config.num_hidden_layers)]

    def block(b: nn.Module, h: torch.Tensor) -> torch.Tensor:
        out = b(h)
        return out[0] if isinstance(out, tuple) else out  # transformers 4.x returns (hidden_states,)

    def head(h: torch.Tensor) -> torch.Tensor:
        h = layernorm(h)
        return classifier((h[:, 0] + h[:, 1]) / 2)

    stages = [embeddings, *[lambda h, b=b: block(b, h) for b in blocks], head]
    cfg = hf_model.config
    x = torch.randn(1, cfg.max_length, cfg.num_mel_bins, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole, steps = module(x), x
        for step in stages:
            steps = step(steps)
    return stages if torch.equal(steps, whole) else None


def build_ast_scratch(n_classes: int, options: dict | None = None, seed: int = 0):
    """A randomly initialised small AST (SCRATCH_DEFAULTS overridden by ``options``) + its feature extractor."""
    tr = _transformers()
    params = {**SCRATCH_DEFAULTS, **(options or {})}
    unknown = sorted(set(params) - set(tr.ASTConfig().to_dict()))
    if unknown:
        raise ModelError(f"unknown AST option(s) {unknown}")
    torch.manual_seed(seed)
    config = tr.ASTConfig(num_labels=n_classes, **params)
    model = tr.ASTForAudioClassification(config)
    fe = tr.ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length)
    return model, fe


def normalization_stats(normalization: Any, where: str = "options.normalization") -> tuple[float, float]:
    """A recipe name (``NORMALIZATIONS``) or ``{mean, std}`` -> (mean, std) of the log-mel features."""
    if isinstance(normalization, str) and normalization in NORMALIZATIONS:
        return NORMALIZATIONS[normalization]
    if isinstance(normalization, dict) and set(normalization) == {"mean", "std"}:
        mean, std = normalization["mean"], normalization["std"]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (mean, std)) and std > 0:
            return float(mean), float(std)
    raise ModelError(f"{where} must be one of {sorted(NORMALIZATIONS)} or {{ mean = <float>, std = <float > 0> }}, "
                     f"got {normalization!r}")


def load_ast_checkpoint(path_or_id: str, name: str = "ast-checkpoint", normalization: Any = None) -> TargetModel:
    """An AST from a local directory (or a model id already in the local HF cache); never downloads.

    Its log-mel normalisation comes from ``normalization`` (a recipe name or {mean, std}) when given, else from
    the checkpoint's ``preprocessor_config.json``; a checkpoint without one needs ``normalization`` (AST's
    AudioSet statistics are wrong for a model fine-tuned on ESC-50: mean -6.63, std 5.36, not -4.27, 4.57).
    """
    tr = _transformers()
    if not path_or_id:
        raise ModelError("ast-checkpoint needs ModelConfig.checkpoint (a local directory or cached model id)")
    local = Path(path_or_id).expanduser()
    source = str(local) if local.exists() else path_or_id
    stats = None if normalization is None else normalization_stats(normalization)
    try:
        model = tr.ASTForAudioClassification.from_pretrained(source, local_files_only=True)
    except OSError as exc:
        raise ModelError(f"AST checkpoint {path_or_id!r} not found locally (offline; no download): {exc}") from exc
    try:
        fe = tr.ASTFeatureExtractor.from_pretrained(source, local_files_only=True)
    except OSError:
        if stats is None:
            raise ModelError(
                f"AST checkpoint {path_or_id!r} has no preprocessor_config.json, so its input normalisation is "
                f"unknown: set the model's options.normalization to a recipe ({', '.join(sorted(NORMALIZATIONS))}"
                f"; the AST ESC-50 recipe is 'esc50') or to {{ mean = ..., std = ... }}") from None
        fe = tr.ASTFeatureExtractor(num_mel_bins=model.config.num_mel_bins, max_length=model.config.max_length)
    if stats is not None:
        fe.mean, fe.std = stats
    return make_ast_target(model, fe, name, "ast-checkpoint",
                           description=f"AST from {source} (log-mel mean {fe.mean:.4g}, std {fe.std:.4g})")
