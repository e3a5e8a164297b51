"""Stage 2 (captions): one description d_i per clip of the probing set, plus its measured acoustics.

Captions depend only on the probing set (never on a target network), so the step runs once per
probing set and every model's summaries share it. Pure: waveforms + an injected captioner -> DataFrames.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from and_engine.acoustics.measurements import check_waveforms, measure_acoustics, relative_loudness
from and_engine.backends.registry import CaptionContext, Captioner, CaptionerError
from and_engine.store.schema import columns


class CaptionsInputError(ValueError):
    """The captions stage got inconsistent inputs (clip ids vs waveforms, bad batch size)."""


def compute_captions(waveforms: np.ndarray, sample_rate: int, captioner: Captioner, clip_ids: np.ndarray | None = None,
                     batch_size: int = 64, progress: Callable[[int], object] | None = None) -> dict[str, pd.DataFrame]:
    """(n_clips, n_samples) float32 audio -> {"captions": (clip_id, caption), "acoustic_features": ...}.

    Acoustics are measured for every clip first, so ``relative_loudness`` is each clip's percentile within
    the whole probing set; then the captioner runs batch by batch (``progress(n)`` after each batch).
    """
    arr = check_waveforms(waveforms, sample_rate)
    n = len(arr)
    ids = np.arange(n, dtype=np.int64) if clip_ids is None else np.asarray(clip_ids, dtype=np.int64)
    if ids.shape != (n,) or len(np.unique(ids)) != n:
        raise CaptionsInputError(f"clip_ids must be {n} unique ids, got shape {ids.shape}")
    if batch_size < 1:
        raise CaptionsInputError(f"batch_size must be >= 1, got {batch_size}")
    feats = pd.concat([measure_acoustics(arr[s : s + batch_size], sample_rate) for s in range(0, n, batch_size)],
                      ignore_index=True)
    feats["relative_loudness"] = relative_loudness(feats["rms_db"].to_numpy(), feats["rms_db"].to_numpy())
    seconds = arr.shape[1] / sample_rate
    captions, feature_rows = [], []
    for s in range(0, n, batch_size):
        ctx = CaptionContext(clip_ids=ids[s : s + batch_size], features=feats.iloc[s : s + batch_size],
                             clip_seconds=seconds)
        result = captioner.caption(arr[s : s + batch_size].astype(np.float32), sample_rate, ctx)
        if len(result.captions) != len(ctx.clip_ids):
            raise CaptionerError(f"captioner {captioner.describe()['backend']!r} returned {len(result.captions)} "
                                 f"captions for {len(ctx.clip_ids)} clips")
        captions.extend(" ".join(str(c).split()) for c in result.captions)
        feature_rows.append(result.features)
        if progress is not None:
            progress(len(ctx.clip_ids))
    caption_df = pd.DataFrame({"clip_id": ids.astype(np.int32), "caption": captions})
    features = pd.concat(feature_rows, ignore_index=True)
    features["clip_id"] = features["clip_id"].astype(np.int32)
    return {"captions": caption_df, "acoustic_features": features[columns("acoustic_features")[1:]]}
