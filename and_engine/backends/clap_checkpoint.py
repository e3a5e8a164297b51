"""LAION-CLAP checkpoints for ``clap:<path>``: a transformers ``ClapModel`` folder, or laion_clap's own ``.pt``.

laion_clap's checkpoints (``630k-audioset-best.pt``, the paper's; ``{"state_dict": {"module.<key>": ...}}``)
name their tensors after laion_clap's modules: ``audio_branch`` (HTSAT: ``bn0``, ``patch_embed``,
``layers.<i>.blocks.<j>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``layers.<i>.downsample``,
``norm``), ``text_branch`` (RoBERTa, transformers' own names), ``{audio,text}_projection.{0,2}`` (Linear,
ReLU, Linear) and ``logit_scale_{a,t}``. ``laion_to_transformers`` renames them into transformers' ``ClapModel``
(the renaming transformers' own conversion script applies; q, k, v split from ``qkv``); laion_clap's STFT /
log-mel modules, ``{audio,text}_transform``, ``tscam_conv``, ``head`` and ``attn_mask`` buffers have no
counterpart and are left out. Sizes are read from the weights (HTSAT width, depths, heads and window from
the relative-position tables; RoBERTa width and depth, heads = width / 64; projection size). Fusion
checkpoints (``enable_fusion``) are refused. Tokens: RoBERTa's BPE files
(``vocab.json`` + ``merges.txt``) must lie beside the ``.pt``; audio: ``ClapFeatureExtractor`` (48 kHz,
``rand_trunc``), or a ``preprocessor_config.json`` beside it. MS-CLAP (Microsoft's) is another architecture
that transformers does not implement, so it is not read.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

from and_engine.backends.registry import AudioTextError

# laion_clap name part -> transformers ClapModel name part, applied in this order to every key
RENAMES = (("text_branch", "text_model"), ("audio_branch", "audio_model.audio_encoder"), ("bn0", "batch_norm"),
           ("attn.proj", "attention.output.dense"), ("attn.", "attention.self."), ("mlp.fc1", "intermediate.dense"),
           ("mlp.fc2", "output.dense"), ("norm1", "layernorm_before"), ("norm2", "layernorm_after"))
DROPPED = ("spectrogram_extractor", "logmel_extractor", "audio_transform", "text_transform", "tscam_conv",
           "audio_branch.head", "attn_mask")


def laion_to_transformers(state: dict) -> dict:
    """A laion_clap state dict -> the transformers ``ClapModel`` state dict (q, k, v split from qkv)."""
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any("fusion_model" in k or "mel_conv2d" in k for k in state):
        raise AudioTextError("clap: fusion checkpoints (enable_fusion = True) are not supported; use a non-fusion "
                             "one such as 630k-audioset-best.pt")
    out = {}
    for key, value in state.items():
        if any(d in key for d in DROPPED):
            continue
        for a, b in RENAMES:
            key = key.replace(a, b)
        key = re.sub(r"_projection\.([02])\.", lambda m: f"_projection.linear{1 if m[1] == '0' else 2}.", key)
        if ".attention.self.qkv." in key:
            for name, part in zip(("query", "key", "value"), value.chunk(3)):
                out[key.replace(".qkv.", f".{name}.")] = part
        else:
            out[key] = value
    return out


def clap_config_from(state: dict):
    """A transformers ``ClapConfig`` sized from converted weights (HTSAT and RoBERTa widths and depths)."""
    from transformers import ClapConfig

    enc = "audio_model.audio_encoder."
    n_layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith(enc + "layers."))
    depths = [1 + max(int(k.split(".")[5]) for k in state if k.startswith(f"{enc}layers.{i}.blocks."))
              for i in range(n_layers)]
    text_layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("text_model.encoder.layer."))
    words = state["text_model.embeddings.word_embeddings.weight"]
    heads = [int(state[f"{enc}layers.{i}.blocks.0.attention.self.relative_position_bias_table"].shape[1])
             for i in range(n_layers)]
    window = int(round((state[f"{enc}layers.0.blocks.0.attention.self.relative_position_bias_table"].shape[0]
                        ** 0.5 + 1) / 2))
    audio = {"patch_embeds_hidden_size": int(state[enc + "patch_embed.proj.weight"].shape[0]), "depths": depths,
             "num_attention_heads": heads, "window_size": window,
             "hidden_size": int(state["audio_projection.linear1.weight"].shape[1]), "enable_fusion": False,
             "projection_dim": int(state["audio_projection.linear2.weight"].shape[0])}
    text = {"vocab_size": int(words.shape[0]), "hidden_size": int(words.shape[1]), "num_hidden_layers": text_layers,
            "num_attention_heads": max(1, int(words.shape[1]) // 64),  # RoBERTa: 64 per head
            "intermediate_size": int(state["text_model.encoder.layer.0.intermediate.dense.weight"].shape[0]),
            "max_position_embeddings": int(state["text_model.embeddings.position_embeddings.weight"].shape[0]),
            "projection_dim": int(state["text_projection.linear2.weight"].shape[0])}
    return ClapConfig(text_config=text, audio_config=audio, projection_dim=text["projection_dim"])


def load_laion_clap(path: Path, audio_overrides: dict | None = None):
    """A laion_clap ``.pt`` -> (eval ``ClapModel``, ``ClapProcessor``); tokenizer files beside the file."""
    import torch
    from transformers import ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    folder = path.parent
    if not ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()):
        raise AudioTextError(f"clap: {path} needs RoBERTa's tokenizer files vocab.json and merges.txt beside it "
                             "(from roberta-base or laion/clap-htsat-unfused)")
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # laion_clap's training checkpoints also pickle numpy scalars (your own file)
        raw = torch.load(str(path), map_location="cpu", weights_only=False)
    state = laion_to_transformers(raw)
    config = clap_config_from(state)
    for k, v in (audio_overrides or {}).items():
        setattr(config.audio_config, k, v)
    model = ClapModel(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids", "relative_position_index"))]
    if missing or unexpected:
        raise AudioTextError(f"clap: {path} does not fit transformers' ClapModel: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
    fe = ClapFeatureExtractor.from_pretrained(str(folder)) if (folder / "preprocessor_config.json").is_file() \
        else ClapFeatureExtractor(truncation="rand_trunc")
    processor = ClapProcessor(feature_extractor=fe, tokenizer=RobertaTokenizer(str(folder / "vocab.json"),
                                                                               str(folder / "merges.txt")))
    return model.eval(), processor
