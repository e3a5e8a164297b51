"""Steps 3-4 (models, SAEs, activations, extremes, activation maps) for every configured target model, then
the clips' media (``clip_media``: audio file + display spectrogram at each model sample rate, for the app).

Per model: ``model`` (models + layers rows; trains / loads the variant), per SAE layer ``sae`` (trains or
loads the sparse autoencoder of ``models[].sae_layers``; its metrics and layers rows), then per layer (SAE
layers too) ``activations`` and ``extremes``, then per layer with a patch grid ``activation_maps`` (all
filled by one second forward pass over the union of the top-K clips, committed layer by layer; empty when
``keep_maps = false``). One forward pass records every layer whose activations need recomputing;
when every fingerprint is unchanged nothing runs except loading the (cached) model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from and_engine.config import ModelConfig, stable_hash
from and_engine.model_identity import model_identity
from and_engine.models.base import LayerSpec, ModelError, TargetModel
from and_engine.models.registry import TRAINED, load_target_model, training_params
from and_engine.models.sae import Sae, attach_sae, load_or_train_sae, sae_layer_spec
from and_engine.pipeline.core import BuildContext, probing_set, run_stage, waveforms
from and_engine.stages import sae as sae_stage
from and_engine.stages.activations import activations_table, maps_table, record_activations, record_maps
from and_engine.stages.clip_media import clip_media_rows
from and_engine.stages.extremes import extremes_frame, topk_bottomk

MAP_COLUMNS = ["model", "layer", "neuron", "clip_id", "rank", "n_freq", "n_time", "map"]


def _model_cfg(ctx: BuildContext, model_name: str) -> ModelConfig:
    for cfg in ctx.config.models:
        if cfg.name == model_name:
            return cfg
    raise ModelError(f"model {model_name!r} is not configured (models: {[m.name for m in ctx.config.models]})")


def _loaded(ctx: BuildContext, model_name: str) -> tuple[TargetModel, dict]:
    key = ("target_model", model_name)
    if key not in ctx.objects:
        ps = probing_set(ctx)
        ctx.objects[key] = load_target_model(_model_cfg(ctx, model_name), ctx.config, ps,
                                             lambda sr: waveforms(ctx, sr), ctx.progress)
    return ctx.objects[key]


def get_target_model(ctx: BuildContext, model_name: str) -> TargetModel:
    """The configured target model ``model_name``, loaded (or trained) once per build."""
    return _loaded(ctx, model_name)[0]


def selected_layers(target: TargetModel, names: tuple[str, ...] | list[str]) -> list[LayerSpec]:
    """ModelConfig.layers -> LayerSpecs in forward order (empty = every dissectable layer)."""
    if not names:
        return target.layers()
    wanted = set(names)
    for name in names:
        target.layer(name)  # ModelError naming the available layers
    return [s for s in target.layers() if s.name in wanted]


def _model_tables(target: TargetModel, info: dict, dissected: list[LayerSpec]) -> dict[str, pd.DataFrame]:
    """The ``models`` row and one ``layers`` row per dissected layer (layer_index: position in the model)."""
    models = pd.DataFrame([{
        "model": target.name, "kind": target.kind, "sample_rate": target.sample_rate,
        "class_names": list(target.class_names), "heldout_fold": info["heldout_fold"],
        "heldout_accuracy": info["heldout_accuracy"], "n_heldout": info["n_heldout"],
        "checkpoint": info["checkpoint"], "description": info["description"],
    }])
    layers = pd.DataFrame([{"model": target.name, "layer": s.name, "module_path": s.module_path, "kind": s.kind,
                            "block": s.block, "layer_index": i, "n_neurons": s.n_neurons, "map_freq": s.map_freq,
                            "map_time": s.map_time} for i, s in enumerate(target.layers()) if s in dissected])
    return {"models": models, "layers": layers}


def _on_ray(ctx: BuildContext) -> bool:
    return ctx.config.execution.engine == "ray"


def _record(ctx: BuildContext, target: TargetModel, layers: list[LayerSpec], bar) -> dict[str, np.ndarray]:
    """u of every layer: a forward pass here, or on Ray actors that read the clips themselves."""
    acfg = ctx.config.activations
    if _on_ray(ctx):
        from and_engine.cluster.activations import clip_files, record_activations_ray

        source = clip_files(probing_set(ctx), target.sample_rate, ctx.config.probing_set.clip_seconds)
        return record_activations_ray(ctx.config.execution, ctx.config.execution.activations, target, source,
                                      len(source.paths), layers, acfg.pool, acfg.batch_size, acfg.precision,
                                      acfg.device, progress=bar)
    return record_activations(target, waveforms(ctx, target.sample_rate), layers, acfg.pool, acfg.batch_size,
                              progress=bar, precision=acfg.precision, compiled=acfg.compile)


def _record_maps(ctx: BuildContext, target: TargetModel, grid: list[LayerSpec], top: dict) -> dict[str, np.ndarray]:
    acfg = ctx.config.activations
    if _on_ray(ctx):
        from and_engine.cluster.activations import clip_files, record_maps_ray

        source = clip_files(probing_set(ctx), target.sample_rate, ctx.config.probing_set.clip_seconds)
        return record_maps_ray(ctx.config.execution, ctx.config.execution.activations, target, source, grid, top,
                               acfg.batch_size, acfg.precision, acfg.device)
    return record_maps(target, waveforms(ctx, target.sample_rate), grid, top, acfg.batch_size, acfg.precision)


def sae_specs(target: TargetModel, model_cfg: ModelConfig, expansion: int) -> list[tuple[LayerSpec, LayerSpec]]:
    """(source layer, SAE layer) of each of ``models[].sae_layers`` (ModelError naming the layers for an unknown
    or unsuitable source)."""
    return [(target.layer(n), sae_layer_spec(target.layer(n), expansion * target.layer(n).n_neurons))
            for n in model_cfg.sae_layers]


def _sae_key(ctx: BuildContext, source: LayerSpec, identity: dict) -> str:
    """What identifies the SAE of ``source``: its parameters, the model's identity and the probing set it is
    trained on (as for trained variants)."""
    cfg = ctx.config
    return stable_hash({"sae": dataclasses.asdict(cfg.sae), "seed": cfg.run.seed, "source": dataclasses.asdict(source),
                        "model": identity, "heldout_fold": cfg.probing_set.heldout_fold,
                        "clip_seconds": cfg.probing_set.clip_seconds,
                        "probing_set": probing_set(ctx).fingerprint_rows()})


def _sae(ctx: BuildContext, target: TargetModel, source: LayerSpec, path: str) -> tuple[Sae, dict]:
    """The SAE of ``source`` (cached at ``path``, else trained on the training clips' vectors) -> (Sae, meta)."""
    key = ("sae", target.name, source.name)
    if key not in ctx.objects:
        cfg, seed = ctx.config.sae, ctx.config.run.seed

        def train() -> tuple[Sae, dict]:
            waves = waveforms(ctx, target.sample_rate)
            train_ids, held_ids = sae_stage.sae_clips(probing_set(ctx).clips, ctx.config.probing_set.heldout_fold)
            ctx.progress.log(f"SAE {target.name}/{source.name}: collecting vectors of {len(train_ids)} clips")
            bs = ctx.config.activations.batch_size
            vectors, _ = sae_stage.layer_vectors(target, waves, source, train_ids, cfg.max_vectors, seed, bs)
            held = (sae_stage.layer_vectors(target, waves, source, held_ids, cfg.max_vectors, seed, bs)[0]
                    if len(held_ids) else np.empty((0, source.n_neurons), np.float32))
            n_latents = cfg.expansion * source.n_neurons
            steps = sae_stage.training_steps(len(vectors), cfg.epochs, cfg.batch_size)
            with ctx.progress.bar(steps, f"SAE {target.name}/{source.name}") as bar:
                return sae_stage.fit_sae(vectors, held, n_latents, cfg.k, cfg.epochs, cfg.lr, cfg.batch_size, seed,
                                         source.name, bar)

        ctx.objects[key] = load_or_train_sae(Path(path), train, ctx.progress.log)
    return ctx.objects[key]


def _run_one_model(ctx: BuildContext, model_cfg: ModelConfig) -> None:
    acfg = ctx.config.activations
    target, info = _loaded(ctx, model_cfg.name)
    if not _on_ray(ctx):  # on Ray each actor moves its own copy to the device
        target.to(acfg.device)
    name = target.name
    extra = {"training": training_params(model_cfg, ctx.config) if model_cfg.kind in TRAINED else {}}
    if model_cfg.kind == "ast-checkpoint" and model_cfg.checkpoint:  # weights replaced in the same directory
        extra["checkpoint_identity"] = model_identity(model_cfg.checkpoint)  # must invalidate everything downstream
    layers = selected_layers(target, model_cfg.layers)
    saes = sae_specs(target, model_cfg, ctx.config.sae.expansion)
    index = {s.name: i for i, s in enumerate(target.layers())}
    run_stage(ctx, "model", {"model": name}, extra, lambda: _model_tables(target, info, layers))
    cache = ctx.config.resolve(ctx.config.run.cache_dir) / "sae"
    paths = {}
    for source, spec in saes:
        key = _sae_key(ctx, source, {"kind": model_cfg.kind, "options": model_cfg.options, **extra})
        paths[source.name] = path = str(cache / f"{model_cfg.kind}-{source.name}-{key}")
        run_stage(ctx, "sae", {"model": name, "layer": spec.name}, {"cache_key": key},
                  lambda source=source, spec=spec, path=path: sae_stage.sae_tables(
                      name, source, spec, index[source.name], _sae(ctx, target, source, path)[1], path))

    def attach_saes() -> None:
        """Put the SAEs into the model before a forward pass records their latents."""
        for source, spec in saes:
            if spec not in target.layers():
                attach_sae(target, source.name, _sae(ctx, target, source, paths[source.name])[0])

    layers += [spec for _, spec in saes]
    values: dict[str, np.ndarray] = {}

    def acts(spec: LayerSpec, fresh: bool = False) -> np.ndarray:
        """u of a layer: from this build's forward pass, else (``fresh=False``) from the committed step."""
        if spec.name not in values and not fresh:
            values[spec.name] = ctx.store.read_activations(name, spec.name)
        elif spec.name not in values:
            attach_saes()
            with ctx.progress.bar(len(probing_set(ctx).clips), f"activations {name}") as bar:
                values.update(_record(ctx, target, layers, bar))
        return values[spec.name]

    for spec in layers:
        scope = {"model": name, "layer": spec.name}
        run_stage(ctx, "activations", scope, {"layer": dataclasses.asdict(spec)},
                  lambda spec=spec: {"activations": activations_table(name, spec.name, acts(spec, fresh=True))})
        run_stage(ctx, "extremes", scope, {},
                  lambda spec=spec: {"extremes": extremes_frame(name, spec.name, acts(spec), acfg.top_k)})

    grid = [s for s in layers if s.map_freq and s.map_time]
    kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def maps(spec: LayerSpec) -> dict[str, pa.Table]:
        """One second pass over the union of top-K clips fills every grid layer; committed layer by layer."""
        if not acfg.keep_maps:
            return {"activation_maps": pd.DataFrame(columns=MAP_COLUMNS)}
        if not kept:
            attach_saes()
            top = {s.name: topk_bottomk(acts(s), acfg.top_k)[0] for s in grid}
            got = _record_maps(ctx, target, grid, top)
            kept.update({s.name: (got[s.name], top[s.name]) for s in grid})
        layer_maps, top_ids = kept.pop(spec.name)
        return {"activation_maps": maps_table(name, spec.name, layer_maps, top_ids)}

    for spec in grid:
        run_stage(ctx, "activation_maps", {"model": name, "layer": spec.name}, {}, lambda spec=spec: maps(spec))


def _run_clip_media(ctx: BuildContext) -> None:
    """One ``clip_media`` step: every clip at every configured model's sample rate (once per distinct rate)."""
    rates = sorted({int(get_target_model(ctx, m.name).sample_rate) for m in ctx.config.models})

    def compute() -> dict[str, pd.DataFrame]:
        clip_ids = probing_set(ctx).clips["clip_id"].to_numpy()
        parts = []
        for sr in rates:
            waves = waveforms(ctx, sr)
            with ctx.progress.bar(len(waves), f"clip media at {sr} Hz") as bar:
                parts.append(clip_media_rows(waves, clip_ids, sr, progress=bar))
        return {"clip_media": pd.concat(parts, ignore_index=True)}

    run_stage(ctx, "clip_media", {}, {"sample_rates": rates}, compute)


def run_model_steps(ctx: BuildContext) -> None:
    """Write models, layers, activations, extremes, activation_maps for every configured model, then clip_media."""
    if ctx.config.activations.num_threads > 0:
        torch.set_num_threads(ctx.config.activations.num_threads)
    for model_cfg in ctx.config.models:
        _run_one_model(ctx, model_cfg)
    if ctx.config.models:
        _run_clip_media(ctx)
