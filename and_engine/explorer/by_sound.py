"""Query by sound: a user's clip through a dissected model -> per layer the neurons it drives furthest beyond
their usual range on the probing set, with this clip's time x frequency map of each.

* ``decode_upload``: uploaded bytes -> the waveform the probing set would have given (same checks and messages:
  ``audio.inspect_audio``, same decoding: ``audio.load_clip``); the bytes exist on disk only as a temporary file
  that is removed before the function returns, whatever happens.
* ``clip_activations``: one waveform -> every layer's pooled activations (the activations stage's own
  ``record_activations``, the build's pooling and precision) and the per-position maps (``record_maps``).
* ``top_neurons``: the clip's activations against the probing set's (``distribution.percentiles``) -> the
  neurons with the highest percentile per layer (ties at 100 % ordered by standard score).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from and_engine.audio import AUDIO_EXTENSIONS, AudioIssue, inspect_audio, load_clip
from and_engine.explorer.distribution import percentiles, standard_scores

UPLOAD_PREFIX = "and-upload-"  # the temporary file's name starts so (tests check none is left behind)


def decode_upload(data: bytes, name: str, sample_rate: int, seconds: float, min_seconds: float = 0.25,
                  silence_dbfs: float = -70.0) -> np.ndarray:
    """An uploaded / recorded file's bytes and name -> (round(sample_rate * seconds),) float32 mono waveform.

    Raises ``AudioIssue`` naming the file as the user called it, with the probing set's reasons (unsupported
    extension, empty, unreadable, silent, too short, NaN / inf). The temporary copy is always removed.
    """
    name = Path(str(name)).name or "upload"
    suffix = Path(name).suffix.lower()
    if suffix not in AUDIO_EXTENSIONS:
        raise AudioIssue(name, f"unsupported extension {suffix!r} (expected one of {AUDIO_EXTENSIONS})")
    if not data:
        raise AudioIssue(name, "empty file (0 bytes)")
    fd, tmp = tempfile.mkstemp(prefix=UPLOAD_PREFIX, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        inspect_audio(Path(tmp), min_seconds, silence_dbfs)
        return load_clip(Path(tmp), sample_rate, seconds)
    except AudioIssue as exc:
        raise AudioIssue(name, exc.reason) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def clip_activations(model, wave: np.ndarray, layers: list, pool: str = "cls", precision: str = "float32",
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A TargetModel, one (n_samples,) waveform, its dissected LayerSpecs -> ({layer: (n_neurons,) pooled
    activations}, {layer: (n_neurons, map_freq, map_time) maps} for the layers with a map grid that their output
    fits; a layer that does not is left out of the maps, never failing the query)."""
    from and_engine.stages.activations import ActivationsError, record_activations, record_maps  # lazy: torch

    batch = np.asarray(wave, dtype=np.float32)[None]
    acts = record_activations(model, batch, layers, pool, 1, precision=precision)
    grid = [s for s in layers if s.map_freq and s.map_time]

    def maps_of(specs: list) -> dict:
        ids = {s.name: np.zeros((s.n_neurons, 1), dtype=np.int64) for s in specs}
        return {k: v[:, 0] for k, v in record_maps(model, batch, specs, ids, 1, precision).items()}

    try:
        maps = maps_of(grid) if grid else {}
    except ActivationsError:  # a layer whose output does not fit its declared grid: the others keep their maps
        maps = {}
        for spec in grid:
            try:
                maps.update(maps_of([spec]))
            except ActivationsError:
                continue
    return {k: v[0] for k, v in acts.items()}, maps


def top_neurons(values: dict[str, np.ndarray], reference: dict[str, np.ndarray], per_layer: int = 5) -> pd.DataFrame:
    """{layer: (n_neurons,) this clip's activations} + {layer: (n_clips, n_neurons) the probing set's} -> rows
    layer, neuron, activation, percentile, z for the ``per_layer`` neurons of each layer (in ``values`` order)
    with the highest percentile, then standard score z."""
    rows = []
    for layer, v in values.items():
        ref = reference[layer]
        pct, z = percentiles(ref, v), standard_scores(ref, v)
        order = np.lexsort((np.arange(len(v)), -z, -pct))[:per_layer]
        rows.append(pd.DataFrame({"layer": layer, "neuron": order.astype(np.int64), "activation": v[order],
                                  "percentile": pct[order], "z": z[order]}))
    cols = ["layer", "neuron", "activation", "percentile", "z"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)
