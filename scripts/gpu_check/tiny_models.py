"""Tiny randomly initialised models of the real classes, saved offline (the GPU check's stand-ins for the
paper's checkpoints): AST, Qwen2-Audio, a Qwen2 causal LM, CLAP, CLIP and a sentence-transformers model.
(The test suite keeps its own copies in tests/_*_fixtures.py: scripts import nothing from tests.)"""

from __future__ import annotations

import json
from pathlib import Path

import torch

WORDS = ("the a dog barks loudly sound of rain water bird sings engine noise quiet high low music speech car "
         "bell wind clips what in common yes no").split()
LETTERS = "abcdefghijklmnopqrstuvwxyz"
CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}")  # the causal LM's (vLLM needs one)


def _word_tokenizer(extra_specials: tuple[str, ...] = ()):
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]", *extra_specials]
    vocab = {t: i for i, t in enumerate(specials + [w for w in dict.fromkeys(WORDS + ["user", "assistant"])])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="<|endoftext|>",
                                   eos_token="<|im_end|>")
    fast.chat_template = CHAT
    return fast, vocab


def save_ast(path: Path, labels: list[str], seconds: float) -> Path:
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    frames = int(seconds * 100) + 2
    config = ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       num_mel_bins=32, max_length=frames, frequency_stride=16, time_stride=16,
                       num_labels=len(labels), id2label=dict(enumerate(labels)),
                       label2id={n: i for i, n in enumerate(labels)})
    ASTForAudioClassification(config).save_pretrained(str(path))
    ASTFeatureExtractor(num_mel_bins=32, max_length=frames, mean=-6.6268077, std=5.358466).save_pretrained(str(path))
    return path


def save_qwen2_audio(path: Path) -> Path:
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    tokenizer, vocab = _word_tokenizer(("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"))
    processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer)
    torch.manual_seed(0)
    config = Qwen2AudioConfig(
        audio_config={"d_model": 16, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 32,
                      "num_mel_bins": 128, "max_source_positions": 1500},
        text_config={"model_type": "qwen2", "vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "max_position_embeddings": 512, "eos_token_id": vocab["<|im_end|>"],
                     "pad_token_id": vocab["<|endoftext|>"]},
        audio_token_index=vocab["<|AUDIO|>"])
    Qwen2AudioForConditionalGeneration(config).save_pretrained(str(path))
    processor.save_pretrained(str(path))
    return path


def save_causal_lm(path: Path) -> Path:
    """A Qwen2ForCausalLM with 64-wide heads (what GPU attention kernels take) and a chat template."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer, vocab = _word_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(vocab), hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"], bos_token_id=None,
                         torch_dtype="bfloat16")
    Qwen2ForCausalLM(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def _char_vocab(path: Path, tokens: list[str]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / "merges.txt").write_text("#version: 0.2\n")


def save_clap(path: Path) -> Path:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    torch.manual_seed(0)
    _char_vocab(path, ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "\u0120", *LETTERS])
    text = dict(vocab_size=6 + len(LETTERS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=64, projection_dim=8)
    audio = dict(depths=[1, 1], num_attention_heads=[1, 1], hidden_size=32, patch_embeds_hidden_size=16,
                 projection_dim=8, window_size=8, spec_size=256, num_mel_bins=64, enable_fusion=False)
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8)).save_pretrained(str(path))
    tok = RobertaTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
    ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"), tokenizer=tok).save_pretrained(
        str(path))
    return path


def save_clip(path: Path) -> Path:
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    torch.manual_seed(0)
    _char_vocab(path, ["!", "<|startoftext|>", "<|endoftext|>", *LETTERS, *(c + "</w>" for c in LETTERS)])
    text = dict(vocab_size=3 + 2 * len(LETTERS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=32, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=16)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(str(path))
    CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt")).save_pretrained(str(path))
    return path


def save_sentence_transformer(path: Path) -> Path:
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    bert = path.parent / (path.name + "-bert")
    bert.mkdir(parents=True, exist_ok=True)
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(str(bert / "vocab.txt")).save_pretrained(str(bert))
    BertModel(BertConfig(vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(str(bert))
    SentenceTransformer(modules=[models.Transformer(str(bert), max_seq_length=32), models.Pooling(16, "mean")],
                        device="cpu").save(str(path))
    return path
