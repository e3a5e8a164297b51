"""Shared fixtures for the dissection tests (Modules A, B, C): tiny random CLIP / CLAP checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def write_char_vocabulary(path: Path, tokens: list[str]) -> None:
    """A character-level BPE vocabulary (``tokens`` in id order, no merges) so a tokenizer loads offline."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / "merges.txt").write_text("#version: 0.2\n")


def save_tiny_clip(path: Path, seed: int = 0) -> Path:
    """A randomly initialised CLIPModel with a tiny text and vision tower saved to ``path``."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    torch.manual_seed(seed)
    write_char_vocabulary(path, ["!", "<|startoftext|>", "<|endoftext|>", *LETTERS, *(c + "</w>" for c in LETTERS)])
    text = dict(vocab_size=3 + 2 * len(LETTERS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=32, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  image_size=32, patch_size=16)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8))
    model.save_pretrained(str(path))
    CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt")).save_pretrained(str(path))
    return path


def save_tiny_clap(path: Path, seed: int = 0) -> Path:
    """A randomly initialised ClapModel (tiny HTSAT audio tower, tiny RoBERTa text tower) + processor."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    torch.manual_seed(seed)
    write_char_vocabulary(path, ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "\u0120", *LETTERS])  # byte-level BPE
    text = dict(vocab_size=6 + len(LETTERS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=64, projection_dim=8)
    audio = dict(depths=[1, 1], num_attention_heads=[1, 1], hidden_size=32, patch_embeds_hidden_size=16,
                 projection_dim=8, window_size=8, spec_size=256, num_mel_bins=64, enable_fusion=False)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8))
    model.save_pretrained(str(path))
    tok = RobertaTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
    processor = ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"), tokenizer=tok)
    processor.save_pretrained(str(path))
    return path


WORDS = ["dog", "barks", "rain", "falls", "a", "the", "loud", "quiet", "engine", "bird", "sings"]


def save_tiny_sentence_transformer(path: Path, seed: int = 0) -> Path:
    """A randomly initialised sentence-transformers model (tiny BERT + mean pooling) saved to ``path``."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    bert = path.parent / (path.name + "-bert")
    bert.mkdir(parents=True, exist_ok=True)
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(str(bert / "vocab.txt")).save_pretrained(str(bert))
    BertModel(BertConfig(vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(str(bert))
    word = models.Transformer(str(bert), max_seq_length=32)
    SentenceTransformer(modules=[word, models.Pooling(16, "mean")], device="cpu").save(str(path))
    return path
