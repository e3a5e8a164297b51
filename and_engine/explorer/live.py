"""Engine functions the app runs live (no streamlit here): calibration at any threshold, and pruning.

* ``recalibrate``: Module B's rule (``module_b.calibrate``) at a new threshold on the stored points.
* ``load_pruning_target``: the model of a results database + its held-out waveforms and labels, built
  from the run's stored config (``runs.config_json``) and the ``clips`` table; audio read safely; the
  build's pruning engine (``analyses.pruning_engine``) on the configured device and precision.
* ``live_prune``: select neurons for a concept (``analyses.pruning.select_neurons``), zero them in this
  session's forward pass only (masks, never the shared model's weights) and evaluate -> ΔA, ΔR,
  per-class changes, accuracy, one clip before / after. The units may be an SAE layer's latents
  (``pruning_layers``): masked the same way, they are ablated in the SAE's reconstruction (``models.sae``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from and_engine.config import Config


class LiveError(ValueError):
    """A live request cannot be served (unknown model / concept, no held-out clips); the message says why."""


def recalibrate(points: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame, str]:
    """Module B's rule (``module_b.calibrate``) at the slider's ``threshold`` in [0, 1]: points (point_index,
    point, best_match, best_cosine) -> (points + ``removed``, calibrated summary S_h^c)."""
    from and_engine.stages.module_b import ModuleBError, calibrate

    if not 0.0 <= float(threshold) <= 1.0:
        raise LiveError(f"calibration threshold must be in [0, 1], got {threshold}")
    try:
        return calibrate(points, threshold)
    except ModuleBError as exc:
        raise LiveError(str(exc)) from exc


def audio_root(config: Config) -> Path:
    """The probing set's root folder (where ``clips.rel_path`` is relative to) for a build's config."""
    path = config.resolve(config.probing_set.path)
    return path.parent if config.probing_set.kind == "csv" else path


def load_model(config: Config, model_name: str, clips: pd.DataFrame, saes: dict[str, str] | None = None):
    """The TargetModel ``model_name`` of a build, on the CPU (pretrained weights, an AST checkpoint, or a trained
    variant from the checkpoint cache; ``clips``, the database's ``clips`` table, keys that cache as the build's
    probing set did), with the SAE layers of ``saes`` attached (``_attach_saes``). LiveError if it is not
    configured or would have to be trained (the app never trains)."""
    from and_engine.models.registry import load_target_model  # lazy: torch and model code
    from and_engine.probing import ProbingSet

    cfgs = {m.name: m for m in config.models}
    if model_name not in cfgs:
        raise LiveError(f"model {model_name!r} is not in this build's config (has {sorted(cfgs)})")
    ps = ProbingSet(root=audio_root(config).resolve(), clips=clips.reset_index(drop=True),
                    issues=pd.DataFrame(columns=["rel_path", "reason"]))

    def no_training(sample_rate: int) -> np.ndarray:  # the registry asks for waveforms only to train
        raise LiveError(f"no cached checkpoint of {model_name!r} under {config.run.cache_dir}: run the build "
                        "first (the app never trains a model)")

    model = load_target_model(cfgs[model_name], config, ps, no_training)[0]
    _attach_saes(model, saes or {})
    return model


@dataclass
class PruningTarget:
    """A loaded target model with its held-out clips (what live pruning evaluates on)."""

    model: object  # and_engine.models.base.TargetModel
    waveforms: np.ndarray  # (n_heldout, n_samples) float32 at model.sample_rate
    labels: np.ndarray  # (n_heldout,) class indices into model.class_names
    clips: pd.DataFrame  # the held-out clips' rows (clip_id, rel_path, label, ...)
    engine: object  # analyses.pruning_engine.PruningEngine on the held-out clips (features, unpruned logits once)

    @property
    def baseline_logits(self) -> np.ndarray:
        """(n_heldout, n_classes) unpruned logits, computed once."""
        return self.engine.baseline

    @property
    def concepts(self) -> list[str]:
        """The model's classes with at least one held-out clip (the target concepts ΔA is defined for)."""
        return [self.model.class_names[i] for i in sorted(set(self.labels.tolist()))]


def load_pruning_target(config: Config, model_name: str, clips: pd.DataFrame,
                        saes: dict[str, str] | None = None) -> PruningTarget:
    """Load ``model_name`` of a build (trained variants from the checkpoint cache) and decode its held-out fold.

    ``clips``: the database's ``clips`` table; the held-out ones are ``probing.heldout_clips`` (as the build's).
    ``saes``: {source layer: SAE folder} of the model's SAE layers (``aggregates.sae_checkpoints``), attached
    when their folder is there. The model runs on ``activations.device`` (the CPU when that device is absent
    here) with ``activations.precision`` and ``activations.num_threads`` torch threads per worker, as the build's
    pruning does; the engine keeps the unpruned inputs of the deepest stages, so a request reruns only the
    stages from its first pruned layer.
    """
    from and_engine.analyses.pruning_engine import PruningEngine, auto_workers
    from and_engine.models.base import ModelError
    from and_engine.probing import ProbingSet, heldout_clips

    model = load_model(config, model_name, clips, saes)
    ps = ProbingSet(root=audio_root(config).resolve(), clips=clips.reset_index(drop=True),
                    issues=pd.DataFrame(columns=["rel_path", "reason"]))
    seconds = config.probing_set.clip_seconds
    try:
        model.to(config.activations.device)
    except ModelError:  # e.g. built on a GPU machine, browsed on a laptop
        model.to("cpu")
    held = heldout_clips(clips, list(model.class_names), config.probing_set.heldout_fold).reset_index(drop=True)
    if held.empty:
        raise LiveError(f"no held-out clips (fold {config.probing_set.heldout_fold}) with a class of {model_name!r}")
    waves = ps.load_waveforms(model.sample_rate, seconds, clip_ids=held["clip_id"].tolist())
    threads = config.activations.num_threads  # as the build: torch's default (one per core) is far slower on a
    engine = PruningEngine(model, waves, config.activations.batch_size, config.activations.precision,  # busy CPU
                           config.analyses.workers or auto_workers(model.device, threads), threads)
    return PruningTarget(model, waves, held["class_index"].to_numpy(np.int64), held.drop(columns="class_index"),
                         engine)


def _attach_saes(model, saes: dict[str, str]) -> None:
    """Attach each SAE whose folder exists (the app never trains one; a missing one is simply not offered)."""
    from and_engine.models.sae import attach_sae, load_sae

    for source, folder in saes.items():
        if (Path(folder) / "meta.json").is_file():
            attach_sae(model, source, load_sae(Path(folder))[0])


def pruning_layers(target: PruningTarget, layers: pd.DataFrame, sae: bool = False) -> dict[str, int]:
    """The model's dissected ``layers`` rows (layer, kind, n_neurons) -> {layer: units} live pruning may touch:
    the neuron layers, or (``sae``) the SAE layers attached to ``target.model``."""
    attached = {s.name for s in target.model.layers()}
    rows = layers[((layers["kind"] == "sae") == sae) & layers["layer"].isin(attached)]
    return dict(zip(rows["layer"].astype(str), rows["n_neurons"].astype(int), strict=True))


@dataclass
class LivePruning:
    """The outcome of one live pruning request."""

    neurons: dict[str, list[int]]  # {layer: pruned neuron ids}
    per_layer: pd.DataFrame  # layer, n_pruned
    per_class: pd.DataFrame  # class_name, delta_logit (mean change of the true-class logit), is_target
    delta_a: float  # change on the target class's clips
    delta_r: float  # mean change on the other classes
    delta_a_minus_r: float  # the paper's printed "ΔA − ΔR" (= ΔR − ΔA, positive = concept-specific)
    accuracy_before: float
    accuracy_after: float
    clip_probs: pd.DataFrame  # class_name, before, after: softmax of the chosen clip, sorted by ``before``

    def tables(self, **request: object) -> dict[str, pd.DataFrame]:
        """The outcome as tables (the Pruning page's download): ``summary`` (one row: ``request``, e.g. model,
        concept, method, then the counts, ΔA, ΔR, ΔR − ΔA and the accuracies), ``pruned`` (layer, neuron: every
        pruned unit), ``per_layer``, ``per_class``, ``clip_prediction``."""
        summary = {**request, "n_pruned": sum(len(v) for v in self.neurons.values()), "delta_a": self.delta_a,
                   "delta_r": self.delta_r, "delta_a_minus_r": self.delta_a_minus_r,
                   "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after}
        pruned = pd.DataFrame([(layer, int(n)) for layer, ids in self.neurons.items() for n in ids],
                              columns=["layer", "neuron"])
        return {"summary": pd.DataFrame([summary]), "pruned": pruned, "per_layer": self.per_layer,
                "per_class": self.per_class, "clip_prediction": self.clip_probs}


def live_prune(target: PruningTarget, method: str, concept: str, closed: pd.DataFrame, opened: pd.DataFrame,
               layer_sizes: dict[str, int], clip_row: int = 0, similarity: str | None = None, top_n: int = 3,
               seed: int = 0, enabled: bool = True) -> LivePruning:
    """Prune the neurons ``method`` ties to ``concept`` (nothing when ``enabled`` is False) and measure.

    ``closed`` / ``opened``: closed- and open-set concept rows (the full tables or
    ``aggregates.pruning_candidates``); ``similarity`` is required for DB / TAB.
    """
    from and_engine.analyses.pruning import concept_deltas, pruning_result, select_neurons

    names = list(target.model.class_names)
    if concept not in names:
        raise LiveError(f"target concept {concept!r} is not a class of {target.model.name!r}")
    if names.index(concept) not in set(target.labels.tolist()):
        raise LiveError(f"no held-out clip of class {concept!r}: ΔA is undefined")
    if not 0 <= clip_row < len(target.waveforms):
        raise LiveError(f"clip row {clip_row} outside the {len(target.waveforms)} held-out clips")
    stored = closed[(closed["method"] == method) & (closed["similarity"] == similarity)]
    if not enabled or (method in ("DB", "TAB") and stored.empty):  # the concept is no neuron's top-n concept
        neurons = {}
    else:
        neurons = select_neurons(method, concept, closed, opened, layer_sizes, top_n=top_n, seed=seed,
                                 similarity=similarity)
    neurons = {k: v for k, v in neurons.items() if v}
    t = names.index(concept)
    logits = target.engine.logits([neurons])[0]  # the baseline itself when nothing is pruned (no forward pass)
    res = pruning_result(target.baseline_logits, logits, target.labels, sum(map(len, neurons.values())))
    d, acc_before, acc_after = res.per_class_delta, res.accuracy_before, res.accuracy_after
    deltas = concept_deltas(d, t)
    per_class = pd.DataFrame({"class_name": names, "delta_logit": d, "is_target": np.arange(len(names)) == t})
    probs = pd.DataFrame({"class_name": names, "before": _softmax(target.baseline_logits[clip_row]),
                          "after": _softmax(logits[clip_row])}).sort_values("before", ascending=False,
                                                                            ignore_index=True)
    return LivePruning(neurons, pd.DataFrame({"layer": list(neurons), "n_pruned": [len(v) for v in neurons.values()]}),
                       per_class.dropna(subset=["delta_logit"]), deltas.delta_a, deltas.delta_r,
                       deltas.delta_a_minus_r, acc_before, acc_after, probs)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()
