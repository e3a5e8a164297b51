"""CLIP text towers from local checkpoints, for ``clip:<path>`` (Module A's DB / ICL mapping, Module B).

Two formats, one model class (transformers ``CLIPTextModelWithProjection``):

* a transformers folder (``config.json`` of a ``CLIPModel`` + tokenizer files), loaded as is;
* an **open_clip** checkpoint: a folder with ``open_clip_config.json`` + ``open_clip_pytorch_model.bin`` /
  ``open_clip_model.safetensors`` (the hub layout), or a single ``.pt`` / ``.bin`` / ``.safetensors`` file (a
  state dict, an open_clip training checkpoint ``{"state_dict": ...}``, or OpenAI's TorchScript archive such
  as ``ViT-B-32.pt``, the paper's). Its text-tower keys (``token_embedding``, ``positional_embedding``,
  ``transformer.resblocks.<i>.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``,
  ``ln_final``, ``text_projection``) are renamed into the transformers model (q, k, v split from
  ``in_proj``); sizes are read from the weights, heads = width / 64 unless ``open_clip_config.json`` says.
  Activation: QuickGELU (OpenAI's weights) unless ``open_clip_config.json`` has ``quick_gelu: false``.
  Pooling at the end-of-text token, the last id of the vocabulary (open_clip's ``argmax``).

Nothing here imports open_clip or torchvision. Tokens: ``vocab.json`` + ``merges.txt`` beside the checkpoint
(CLIP's BPE, ``CLIPTokenizer``) when present, else open_clip's own tokenizer (``requirements-gpu.txt``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from and_engine.backends.registry import TextEncoderError

OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def _read_state_dict(path: Path) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except RuntimeError:  # OpenAI's TorchScript archives (ViT-B-32.pt)
        obj = torch.jit.load(str(path), map_location="cpu").state_dict()
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    return {k.removeprefix("module."): v for k, v in obj.items()}


def open_clip_text_state(state: dict) -> tuple[dict, dict]:
    """An open_clip / OpenAI CLIP state dict -> (transformers CLIPTextModelWithProjection state dict, sizes)."""
    if "token_embedding.weight" not in state and "text.token_embedding.weight" in state:
        state = {k.removeprefix("text."): v for k, v in state.items() if k.startswith("text.")}
    if "token_embedding.weight" not in state:
        raise TextEncoderError("not an open_clip / OpenAI CLIP checkpoint: no token_embedding.weight")
    vocab, width = state["token_embedding.weight"].shape
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("transformer.resblocks."))
    proj = state["text_projection.weight"] if "text_projection.weight" in state else state["text_projection"].T
    out = {"text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
           "text_model.final_layer_norm.weight": state["ln_final.weight"],
           "text_model.final_layer_norm.bias": state["ln_final.bias"], "text_projection.weight": proj}
    names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
             "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
        for part in ("weight", "bias"):
            for a, b in names.items():
                out[f"{dst}{b}.{part}"] = state[f"{src}{a}.{part}"]
            for name, chunk in zip(("q_proj", "k_proj", "v_proj"), state[f"{src}attn.in_proj_{part}"].chunk(3)):
                out[f"{dst}self_attn.{name}.{part}"] = chunk
    sizes = {"vocab_size": int(vocab), "hidden_size": int(width), "num_hidden_layers": layers,
             "intermediate_size": int(state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
             "max_position_embeddings": int(state["positional_embedding"].shape[0]),
             "projection_dim": int(proj.shape[0])}
    return out, sizes


def _open_clip_files(path: Path) -> tuple[Path, dict] | None:
    """(weights file, open_clip_config.json's model_cfg or {}) of an open_clip checkpoint; None = not one."""
    folder = path if path.is_dir() else path.parent
    cfg_file = folder / "open_clip_config.json"
    model_cfg = json.loads(cfg_file.read_text()).get("model_cfg", {}) if cfg_file.is_file() else {}
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return path, model_cfg
    if path.is_dir():
        for name in OPEN_CLIP_WEIGHTS:
            if (path / name).is_file():
                return path / name, model_cfg
    return None


def load_open_clip_text(weights: Path, model_cfg: dict):
    """An open_clip checkpoint's text tower -> an eval ``CLIPTextModelWithProjection`` (float32, CPU)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    state, sizes = open_clip_text_state(_read_state_dict(weights))
    text_cfg = model_cfg.get("text_cfg", {})
    heads = int(text_cfg.get("heads", sizes["hidden_size"] // 64)) or 1
    config = CLIPTextConfig(**sizes, num_attention_heads=heads,
                            hidden_act="quick_gelu" if model_cfg.get("quick_gelu", True) else "gelu",
                            eos_token_id=sizes["vocab_size"] - 1, bos_token_id=sizes["vocab_size"] - 2,
                            pad_token_id=0)
    model = CLIPTextModelWithProjection(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise TextEncoderError(f"clip: {weights} does not fit a CLIP text tower: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
    return model.eval()


class _OpenClipTokenizer:
    """open_clip's BPE tokenizer (imported only when no vocab.json / merges.txt lies beside the checkpoint)."""

    def __init__(self, context_length: int):
        try:
            from open_clip.tokenizer import SimpleTokenizer
        except ImportError as exc:
            raise TextEncoderError("clip: an open_clip checkpoint needs vocab.json + merges.txt beside it, or the "
                                   "open_clip_torch package (pip install -r requirements-gpu.txt)") from exc
        self.tok, self.context_length = SimpleTokenizer(), context_length

    def __call__(self, texts: list[str]) -> dict:
        import torch

        ids = self.tok(texts, context_length=self.context_length)
        eot = ids.argmax(dim=-1, keepdim=True)
        return {"input_ids": ids, "attention_mask": (torch.arange(ids.shape[1]) <= eot).long()}


def load_clip_text(path: Path):
    """``clip:<path>`` -> (text model with projection, tokenize(texts) -> {input_ids, attention_mask})."""
    from transformers import CLIPModel, CLIPTokenizer

    found = _open_clip_files(path)
    folder = path if path.is_dir() else path.parent
    if found is None:
        if not (path / "config.json").is_file():
            raise TextEncoderError(f"clip: {path} is neither a transformers CLIP folder (config.json) nor an "
                                   f"open_clip checkpoint ({', '.join(OPEN_CLIP_WEIGHTS)} or a {CHECKPOINT_SUFFIXES} "
                                   "file)")
        model = CLIPModel.from_pretrained(str(path)).eval()
        model_max = model.config.text_config.max_position_embeddings
    else:
        model = load_open_clip_text(*found)
        model_max = model.config.max_position_embeddings
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        tok = CLIPTokenizer.from_pretrained(str(folder)) if (folder / "tokenizer_config.json").is_file() \
            else CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))

        def tokenize(texts: list[str]) -> dict:
            return tok(texts, padding=True, truncation=True, max_length=model_max, return_tensors="pt")
    else:
        tokenize = _OpenClipTokenizer(model_max)
    return model, tokenize


def text_features(model, batch: dict) -> np.ndarray:
    """Projected text embeddings of a tokenised batch -> (n, d) float32 (not normalised)."""
    if hasattr(model, "get_text_features"):
        feats = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        feats = getattr(feats, "pooler_output", feats)  # transformers 5 may return a ModelOutput
    else:
        feats = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).text_embeds
    return feats.float().cpu().numpy()
