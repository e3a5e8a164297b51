"""Shared fixtures for the dissection tests (Modules A, B, C): tiny random CLIP / CLAP checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def write_tiny_clip_tokenizer(path: Path) -> None:
    """A character-level CLIP BPE vocabulary (no merges) so CLIPTokenizer loads offline."""
    tokens = ["!", "<|startoftext|>", "<|endoftext|>"] + list(LETTERS) + [c + "</w>" for c in LETTERS]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / "merges.txt").write_text("#version: 0.2\n")


def save_tiny_clip(path: Path, seed: int = 0) -> Path:
    """A randomly initialised CLIPModel with a tiny text and vision tower saved to ``path``."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    torch.manual_seed(seed)
    write_tiny_clip_tokenizer(path)
    text = dict(vocab_size=3 + 2 * len(LETTERS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=32, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  image_size=32, patch_size=16)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8))
    model.save_pretrained(str(path))
    CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt")).save_pretrained(str(path))
    return path


def write_tiny_roberta_tokenizer(path: Path) -> None:
    """A character-level byte-level BPE vocabulary (no merges) for CLAP's RobertaTokenizer."""
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "\u0120"] + list(LETTERS)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / "merges.txt").write_text("#version: 0.2\n")


def save_tiny_clap(path: Path, seed: int = 0) -> Path:
    """A randomly initialised ClapModel (tiny HTSAT audio tower, tiny RoBERTa text tower) + processor."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    torch.manual_seed(seed)
    write_tiny_roberta_tokenizer(path)
    text = dict(vocab_size=6 + len(LETTERS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=64, projection_dim=8)
    audio = dict(depths=[1, 1], num_attention_heads=[1, 1], hidden_size=32, patch_embeds_hidden_size=16,
                 projection_dim=8, window_size=8, spec_size=256, num_mel_bins=64, enable_fusion=False)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8))
    model.save_pretrained(str(path))
    tok = RobertaTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
    ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"), tokenizer=tok).save_pretrained(str(path))
    return path


class WordVectorEncoder:
    """A deterministic test encoder: each text = normalised sum of fixed random vectors of its words."""

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self.dim, self.seed, self.calls = dim, seed, 0

    def _word(self, word: str):
        import zlib

        import numpy as np

        return np.random.default_rng([self.seed, zlib.crc32(word.encode())]).standard_normal(self.dim)

    def encode(self, texts: list[str]):
        import numpy as np

        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in text.lower().replace("_", " ").split():
                out[i] += self._word(w.strip(".,:;!?'\""))
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def describe(self) -> dict:
        return {"backend": "word-vectors", "model": "test", "params": {"dim": self.dim}}


class ScriptedLLM:
    """A test LLM that answers from a function of the prompt and records every prompt it was sent."""

    def __init__(self, answer) -> None:
        self.answer, self.prompts = answer, []

    def generate(self, prompts: list[str]) -> list[str]:
        self.prompts += prompts
        return [self.answer(p) for p in prompts]

    def describe(self) -> dict:
        return {"backend": "scripted", "model": "test", "params": {}}
