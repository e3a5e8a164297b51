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
