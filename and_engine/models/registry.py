"""Target models by configured kind; trained variants are trained once and cached as checkpoints.

Checkpoints live in ``<run.cache_dir>/models/<kind>-<key>/`` where key = hash(kind, training params,
probing-set fingerprint); a later build (or the app's live pruning) loads them instead of retraining. Builds
sharing a cache_dir take ``<kind>-<key>.lock`` while they look up or train one, and publish it by renaming a
uniquely named temporary folder, so the cache never mixes two builds' files.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from and_engine.cache_files import file_lock, temporary_sibling
from and_engine.config import MODEL_KINDS, MODEL_OPTIONS, Config, ModelConfig, stable_hash
from and_engine.models import training
from and_engine.models.ast import (
    SCRATCH_DEFAULTS,
    ast_layer_specs,
    build_ast_scratch,
    load_ast_checkpoint,
    make_ast_target,
)
from and_engine.models.base import LayerSpec, ModelError, TargetModel
from and_engine.models.yamnet import (
    YamnetNet,
    load_pretrained_yamnet,
    load_yamnet_weights,
    make_yamnet_target,
    yamnet_layer_specs,
)
from and_engine.probing import heldout_clips

KINDS = MODEL_KINDS  # the configuration's vocabulary (config.MODEL_KINDS, checked when a config is loaded)
TRAINED = ("yamnet-frozen", "yamnet-finetuned", "ast-scratch")


def training_params(model_cfg: ModelConfig, config: Config) -> dict:
    """Everything that determines a trained variant's weights (goes into the checkpoint key)."""
    epochs, lr, batch = training.DEFAULTS[model_cfg.kind]
    return {
        "kind": model_cfg.kind, "epochs": model_cfg.train_epochs or epochs, "lr": model_cfg.train_lr or lr,
        "batch_size": int(model_cfg.options.get("batch_size", batch)), "seed": config.run.seed,
        "heldout_fold": config.probing_set.heldout_fold, "clip_seconds": config.probing_set.clip_seconds,
        "arch": {k: v for k, v in sorted(model_cfg.options.items()) if k not in MODEL_OPTIONS},
    }


def _split(probing_set, heldout_fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(train rows: folds != held-out, held-out rows: ``probing.heldout_clips``, label index per row,
    class names) over probing_set.clips rows."""
    clips = probing_set.clips.reset_index(drop=True)
    classes = probing_set.class_names
    labels = clips["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    held = heldout_clips(clips, classes, heldout_fold).index.to_numpy()
    return np.flatnonzero(clips["fold"].to_numpy() != heldout_fold), held, labels, classes


def _train(model_cfg: ModelConfig, params: dict, waves: np.ndarray, labels: np.ndarray, classes: list[str],
           seconds: float, device: str = "cpu"):
    """Train one variant on ``device`` -> (TargetModel on that device, saver(path))."""
    kind, name = model_cfg.kind, model_cfg.name
    if kind == "ast-scratch":
        hf, fe = build_ast_scratch(len(classes), params["arch"], params["seed"])
        hf.config.id2label = dict(enumerate(classes))
        hf.config.label2id = {c: i for i, c in enumerate(classes)}
        training.train_ast(hf, fe, waves, labels, params["epochs"], params["lr"], params["seed"], params["batch_size"],
                           device)
        target = make_ast_target(hf.cpu(), fe, name, kind, classes, "small AST trained from scratch on the probing set")
        return target.to(device), lambda path: (hf.save_pretrained(path), fe.save_pretrained(path))
    net = load_yamnet_weights(YamnetNet(len(classes)), with_classifier=False)
    if kind == "yamnet-frozen":
        training.train_linear_head(net, waves, labels, params["epochs"], params["lr"], params["seed"], device)
        desc = "YAMNet (AudioSet) frozen + a linear head trained on the probing set"
    else:
        training.train_yamnet_full(net, waves, labels, params["epochs"], params["lr"], params["seed"],
                                   params["batch_size"], device)
        desc = "YAMNet (AudioSet) fully fine-tuned on the probing set"
    target = make_yamnet_target(net.cpu(), name, kind, classes, seconds,
                                bool(model_cfg.options.get("include_depthwise")), desc)
    return target.to(device), lambda path: torch.save(net.state_dict(), path / "weights.pt")


def _load_cached(model_cfg: ModelConfig, path: Path, meta: dict, seconds: float) -> TargetModel:
    classes = meta["class_names"]
    if model_cfg.kind == "ast-scratch":
        target = load_ast_checkpoint(str(path), model_cfg.name)
        target.kind = model_cfg.kind
        target.class_names = list(classes)
        return target
    net = YamnetNet(len(classes))
    net.load_state_dict(torch.load(path / "weights.pt", map_location="cpu", weights_only=True))
    return make_yamnet_target(net, model_cfg.name, model_cfg.kind, classes, seconds,
                              bool(model_cfg.options.get("include_depthwise")), meta["description"])


def load_target_model(model_cfg: ModelConfig, config: Config, probing_set, waveforms_fn: Callable[[int], np.ndarray],
                      progress=None) -> tuple[TargetModel, dict]:
    """The configured target model -> (TargetModel, info {heldout_fold, heldout_accuracy, n_heldout,
    checkpoint, description}). Trained variants are trained on folds != held-out unless cached."""
    if model_cfg.kind not in KINDS:
        raise ModelError(f"model {model_cfg.name!r}: unknown kind {model_cfg.kind!r}; kinds: {KINDS}")
    extra = sorted(set(model_cfg.options) - set(MODEL_OPTIONS))
    if extra and model_cfg.kind != "ast-scratch":
        raise ModelError(f"model {model_cfg.name!r}: unknown option(s) {extra} for kind {model_cfg.kind!r}; "
                         f"known: {list(MODEL_OPTIONS)}")
    seconds, fold = config.probing_set.clip_seconds, config.probing_set.heldout_fold
    info = {"heldout_fold": fold, "heldout_accuracy": None, "n_heldout": 0, "checkpoint": "", "description": ""}
    if model_cfg.kind == "yamnet":
        target = load_pretrained_yamnet(model_cfg.name, seconds, bool(model_cfg.options.get("include_depthwise")))
        return target, {**info, "description": target.description}
    if model_cfg.kind == "ast-checkpoint":
        target = load_ast_checkpoint(model_cfg.checkpoint, model_cfg.name, model_cfg.options.get("normalization"))
        return target, {**info, "checkpoint": model_cfg.checkpoint, "description": target.description}
    params = training_params(model_cfg, config)
    key = stable_hash({"params": params, "probing_set": probing_set.fingerprint_rows()})
    path = config.resolve(config.run.cache_dir) / "models" / f"{model_cfg.kind}-{key}"
    if not (path / "meta.json").is_file():  # a published checkpoint is complete: reading it needs no lock
        # one build trains it; another build of the same checkpoint waits, then loads it
        with file_lock(path.with_name(path.name + ".lock"), on_wait=progress.log if progress is not None else None):
            if not (path / "meta.json").is_file():
                target, meta = _train_and_save(model_cfg, config, params, probing_set, waveforms_fn, path, progress)
                return target, _checkpoint_info(info, meta, path)
    meta = json.loads((path / "meta.json").read_text())
    return _load_cached(model_cfg, path, meta, seconds), _checkpoint_info(info, meta, path)


def _checkpoint_info(info: dict, meta: dict, path: Path) -> dict:
    return {**info, **{k: meta[k] for k in ("heldout_accuracy", "n_heldout", "description")}, "checkpoint": str(path)}


def _train_and_save(model_cfg: ModelConfig, config: Config, params: dict, probing_set,
                    waveforms_fn: Callable[[int], np.ndarray], path: Path, progress) -> tuple[TargetModel, dict]:
    """Train a variant and publish its checkpoint folder at ``path`` (written under a unique temporary name,
    then renamed: it appears complete or not at all) -> (TargetModel, meta)."""
    train_rows, held_rows, labels, classes = _split(probing_set, config.probing_set.heldout_fold)
    if progress is not None:
        progress.log(f"training {model_cfg.name} ({model_cfg.kind}) on {len(train_rows)} clips")
    t0 = time.perf_counter()
    waves = waveforms_fn(16000)
    target, save = _train(model_cfg, params, waves[train_rows], labels[train_rows], classes,
                          config.probing_set.clip_seconds, config.activations.device)
    acc = training.heldout_accuracy(target, waves[held_rows], labels[held_rows])
    meta = {"class_names": classes, "heldout_accuracy": None if np.isnan(acc) else acc,
            "n_heldout": int(len(held_rows)), "description": target.description, "params": params,
            "train_seconds": round(time.perf_counter() - t0, 1)}
    tmp = temporary_sibling(path)
    try:
        tmp.mkdir(parents=True)
        save(tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(path, ignore_errors=True)  # an incomplete folder left by an older version
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, meta


def layer_specs_without_weights(model_cfg: ModelConfig, config: Config, n_classes: int) -> list[LayerSpec]:
    """The dissectable layers (names, widths) of a configured model from its architecture alone: no weights
    loaded, nothing trained (``plan``). ``n_classes``: the probing set's classes (trained variants' heads).
    ast-checkpoint reads the checkpoint's config.json and builds the network on the meta device."""
    kind, seconds = model_cfg.kind, config.probing_set.clip_seconds
    if kind in ("yamnet", "yamnet-frozen", "yamnet-finetuned"):
        net = YamnetNet(521 if kind == "yamnet" else n_classes)
        return yamnet_layer_specs(net, seconds, bool(model_cfg.options.get("include_depthwise")))
    if kind not in ("ast-scratch", "ast-checkpoint"):
        raise ModelError(f"model {model_cfg.name!r}: unknown kind {kind!r}; kinds: {KINDS}")
    import transformers

    if kind == "ast-scratch":
        arch = {k: v for k, v in model_cfg.options.items() if k not in MODEL_OPTIONS}
        hf_config = transformers.ASTConfig(num_labels=n_classes, **{**SCRATCH_DEFAULTS, **arch})
    else:
        try:
            hf_config = transformers.ASTConfig.from_pretrained(model_cfg.checkpoint, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"model {model_cfg.name!r}: no AST config at {model_cfg.checkpoint!r}: {exc}") from exc
    with torch.device("meta"):
        return ast_layer_specs(transformers.ASTForAudioClassification(hf_config))
