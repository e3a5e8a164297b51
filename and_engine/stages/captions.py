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
    feats = with_relative_loudness(pd.concat([measure_acoustics(arr[s : s + batch_size], sample_rate)
                                              for s in range(0, n, batch_size)], ignore_index=True))
    captions, feature_rows = [], []
    for s in range(0, n, batch_size):
        said, rows = caption_batch(captioner, arr[s : s + batch_size], sample_rate, ids[s : s + batch_size],
                                   feats.iloc[s : s + batch_size])
        captions.extend(said)
        feature_rows.append(rows)
        if progress is not None:
            progress(len(said))
    return captions_tables(ids, captions, feature_rows)


def with_relative_loudness(measured: pd.DataFrame) -> pd.DataFrame:
    """``measure_acoustics`` rows of the whole probing set (clip order) + ``relative_loudness`` among them."""
    measured = measured.reset_index(drop=True)
    measured["relative_loudness"] = relative_loudness(measured["rms_db"].to_numpy(), measured["rms_db"].to_numpy())
    return measured


def caption_batch(captioner: Captioner, waveforms: np.ndarray, sample_rate: int, clip_ids: np.ndarray,
                  features: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """One batch: (b, samples) audio of ``clip_ids`` + their measured rows -> (b captions with whitespace
    folded, their acoustic_features rows). CaptionerError when the captioner answers another count."""
    arr = check_waveforms(waveforms, sample_rate)
    ctx = CaptionContext(clip_ids=np.asarray(clip_ids, dtype=np.int64), features=features,
                         clip_seconds=arr.shape[1] / sample_rate)
    result = captioner.caption(arr.astype(np.float32), sample_rate, ctx)
    if len(result.captions) != len(ctx.clip_ids):
        raise CaptionerError(f"captioner {captioner.describe()['backend']!r} returned {len(result.captions)} "
                             f"captions for {len(ctx.clip_ids)} clips")
    return [" ".join(str(c).split()) for c in result.captions], result.features


def captions_tables(clip_ids: np.ndarray, captions: list[str], feature_rows: list[pd.DataFrame]
                    ) -> dict[str, pd.DataFrame]:
    """Captions in ``clip_ids`` order + the batches' feature rows -> the captions and acoustic_features tables."""
    caption_df = pd.DataFrame({"clip_id": np.asarray(clip_ids).astype(np.int32), "caption": captions})
    features = pd.concat(feature_rows, ignore_index=True)
    features["clip_id"] = features["clip_id"].astype(np.int32)
    return {"captions": caption_df, "acoustic_features": features[columns("acoustic_features")[1:]]}
