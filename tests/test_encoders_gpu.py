"""Encoders on the configured device with batching; any sentence-transformers model (folder or an id in the
local Hugging Face cache); CLIP text towers from open_clip / OpenAI checkpoints (no open_clip, no torchvision);
CLAP from laion_clap's own .pt and fed at its own 48 kHz."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch
from _dissect_fixtures import (
    LETTERS,
    save_tiny_clap,
    save_tiny_sentence_transformer,
    write_char_vocabulary,
)

from and_engine.backends.registry import AudioTextError, TextEncoderError, make
from and_engine.config import Config, DeviceConfig


class Stop(Exception):
    pass


def test_any_sentence_transformers_folder_or_cached_model_id(tmp_path, monkeypatch):
    folder = save_tiny_sentence_transformer(tmp_path / "st")
    texts = ["a dog barks", "rain falls", "a dog barks", "the bird sings"]
    local = make("text_encoder", f"sentence-transformers:{folder}", {"batch_size": 2})
    v = local.encode(texts)
    assert v.shape == (4, 16) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    # the same model under a hub id, only in a local Hugging Face cache (offline: nothing is downloaded)
    import huggingface_hub.constants as hub

    snapshot = tmp_path / "hub" / "models--acme--tiny-st" / "snapshots" / ("0" * 40)
    shutil.copytree(folder, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    by_id = make("text_encoder", "sentence-transformers:acme/tiny-st")
    np.testing.assert_allclose(by_id.encode(texts), v, atol=1e-6)
    assert by_id.describe()["model"] == "acme/tiny-st" and local.describe()["model"].startswith("st#")
    with pytest.raises(TextEncoderError, match="local Hugging Face cache.*hf download acme/absent"):
        make("text_encoder", "sentence-transformers:acme/absent").encode(["x"])
    with pytest.raises(TextEncoderError, match="all-MiniLM-L12-v2"):  # the paper's encoder is not cached here
        make("text_encoder", "minilm-l12").encode(["x"])


def test_encoders_run_on_the_configured_device(monkeypatch, tmp_path):
    import sentence_transformers

    seen = {}

    class Spy:
        def __init__(self, source, device=None, **kwargs):
            seen.update(device=device, **kwargs)
            raise Stop

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", Spy)
    for name in ("minilm", f"sentence-transformers:{tmp_path}"):
        with pytest.raises(Stop):
            make("text_encoder", name, {"device": "auto"}).encode(["x"])
        assert seen["device"] == "cuda" and seen["local_files_only"] is True


def test_the_build_gives_encoders_and_clap_the_device_section(tmp_path):
    from and_engine.pipeline.core import BuildContext, Progress, text_encoder
    from and_engine.pipeline.steps_dissect import _tab

    config = Config(device=DeviceConfig(text_encoders="cpu:0", text_batch_size=7, audio_text="cpu:0",
                                        audio_batch_size=3), module_a=Config().module_a.__class__(
        audio_text_model=f"clap:{tmp_path}"))
    ctx = BuildContext(config=config, store=None, run_id="r", progress=Progress(quiet=True))
    enc = text_encoder(ctx, "minilm")
    assert (enc.device_name, enc.batch_size, enc.device) == ("cpu:0", 7, "cpu:0")
    tab = _tab(ctx)
    assert (tab.device_name, tab.batch_size, tab.sample_rate) == ("cpu:0", 3, 48000)


VOCAB = 3 + 2 * len(LETTERS)  # "!", letters, letters</w>, start and end of text


def _open_clip_text_state(width=16, layers=2, ctx_len=12, vocab=VOCAB, embed=8, seed=0):
    """A state dict with open_clip's ViT-B/32 key names (text tower at a tiny width) plus vision keys."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    sd = {"token_embedding.weight": r(vocab, width), "positional_embedding": r(ctx_len, width),
          "ln_final.weight": 1 + r(width), "ln_final.bias": r(width), "text_projection": r(width, embed),
          "logit_scale": torch.tensor(4.6), "visual.conv1.weight": r(width, 3, 4, 4), "visual.proj": r(width, embed)}
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        sd.update({p + "ln_1.weight": 1 + r(width), p + "ln_1.bias": r(width), p + "ln_2.weight": 1 + r(width),
                   p + "ln_2.bias": r(width), p + "attn.in_proj_weight": r(3 * width, width),
                   p + "attn.in_proj_bias": r(3 * width), p + "attn.out_proj.weight": r(width, width),
                   p + "attn.out_proj.bias": r(width), p + "mlp.c_fc.weight": r(4 * width, width),
                   p + "mlp.c_fc.bias": r(4 * width), p + "mlp.c_proj.weight": r(width, 4 * width),
                   p + "mlp.c_proj.bias": r(width)})
    return sd


def _open_clip_reference(sd, ids: torch.Tensor, heads: int) -> torch.Tensor:
    """open_clip's TextTransformer forward, written out: causal pre-LN blocks with nn.MultiheadAttention on
    ``in_proj``, QuickGELU MLP, ln_final, the EOT token (argmax id) @ text_projection."""
    width, n = sd["token_embedding.weight"].shape[1], ids.shape[1]
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"][:n]
    mask = torch.full((n, n), float("-inf")).triu(1)
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.resblocks."))
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        attn = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        attn.load_state_dict({k: sd[p + "attn." + k] for k in ("in_proj_weight", "in_proj_bias", "out_proj.weight",
                                                                 "out_proj.bias")})
        h = torch.nn.functional.layer_norm(x, (width,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
        x = x + attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        h = torch.nn.functional.layer_norm(x, (width,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        h = torch.nn.functional.linear(h, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])
        h = h * torch.sigmoid(1.702 * h)
        x = x + torch.nn.functional.linear(h, sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
    x = torch.nn.functional.layer_norm(x, (width,), sd["ln_final.weight"], sd["ln_final.bias"])
    return x[torch.arange(len(ids)), ids.argmax(dim=-1)] @ sd["text_projection"]


class _Holder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchscript_archive(sd: dict, path) -> None:
    """A TorchScript archive holding ``sd`` under its dotted names (the format of OpenAI's ViT-B-32.pt)."""
    root = _Holder()
    for key, value in sd.items():
        *parents, leaf = key.split(".")
        mod = root
        for part in parents:
            if not hasattr(mod, part):
                mod.add_module(part, _Holder())
            mod = getattr(mod, part)
        mod.register_parameter(leaf, torch.nn.Parameter(value.clone(), requires_grad=False))
    torch.jit.save(torch.jit.script(root), str(path))


@pytest.mark.parametrize("layout", ["file", "torchscript", "hub-folder"])
def test_open_clip_checkpoint_loads_into_the_text_tower_without_torchvision(tmp_path, layout):
    sd = _open_clip_text_state()
    # CLIP's BPE vocabulary (characters here), end-of-text last as in open_clip (49407 of 49408)
    tokens = ["!", *LETTERS, *(c + "</w>" for c in LETTERS), "<|startoftext|>", "<|endoftext|>"]
    write_char_vocabulary(tmp_path, tokens)
    target = tmp_path / "ViT-B-32.pt"
    if layout == "file":  # an open_clip training checkpoint
        torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, target)
    elif layout == "torchscript":  # OpenAI's release format
        _torchscript_archive(sd, target)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "open_clip_model.safetensors")
        (tmp_path / "open_clip_config.json").write_text(
            '{"model_cfg": {"embed_dim": 8, "quick_gelu": true, "text_cfg": {"width": 16, "heads": 4, "layers": 2}}}')
        target = tmp_path
    had_torchvision = "torchvision" in sys.modules
    enc = make("text_encoder", f"clip:{target}", {"batch_size": 2})
    texts = ["dog barking", "rain", "a very long sentence about dogs"]
    got = enc.encode(texts)
    assert ("torchvision" in sys.modules) == had_torchvision and "open_clip" not in sys.modules
    from transformers import CLIPTokenizer

    ids = [CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))(
        t, truncation=True, max_length=12, return_tensors="pt")["input_ids"] for t in texts]
    heads = 4 if layout == "hub-folder" else 1  # a bare file: width / 64 (at least 1); the hub config says 4
    assert enc._model.config.num_attention_heads == heads
    ref = torch.cat([_open_clip_reference(sd, i, heads) for i in ids])
    ref = (ref / ref.norm(dim=1, keepdim=True)).detach().numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)


def _laion_clap_state(tiny_dir) -> tuple[dict, dict]:
    """laion_clap-named tensors (its module names, written out) for the tiny ClapModel's sizes, plus the
    transformers-named tensor each one must land in."""
    from transformers import ClapModel

    hf = ClapModel.from_pretrained(str(tiny_dir)).state_dict()
    g = torch.Generator().manual_seed(1)
    laion, expect = {}, {}

    def put(laion_key: str, hf_key: str):
        value = torch.randn(hf[hf_key].shape, generator=g) if hf[hf_key].is_floating_point() else hf[hf_key].clone()
        value = value.abs() + 0.5 if "running_var" in hf_key else value
        laion["module." + laion_key], expect[hf_key] = value, value

    enc = "audio_model.audio_encoder."
    for k in hf:
        if k.startswith("text_model."):
            put("text_branch." + k.removeprefix("text_model."), k)
        elif k.startswith(("text_projection.", "audio_projection.")):
            head, lin, part = k.split(".")
            put(f"{head}.{ {'linear1': 0, 'linear2': 2}[lin] }.{part}".replace(" ", ""), k)
        elif k.startswith(enc) and ".attention.self.query." in k:
            q, kk, v = (hf[k.replace(".query.", f".{n}.")] for n in ("query", "key", "value"))
            qkv = torch.randn(torch.cat([q, kk, v]).shape, generator=g)
            name = k.removeprefix(enc).replace("layernorm_before", "norm1").replace(".attention.self.query.",
                                                                                    ".attn.qkv.")
            laion["module.audio_branch." + name] = qkv
            for n, part in zip(("query", "key", "value"), qkv.chunk(3)):
                expect[k.replace(".query.", f".{n}.")] = part
        elif k.startswith(enc) and (".attention.self.key." in k or ".attention.self.value." in k):
            continue
        elif k.startswith(enc):
            name = (k.removeprefix(enc).replace("layernorm_before", "norm1").replace("layernorm_after", "norm2")
                    .replace("attention.output.dense", "attn.proj").replace("attention.self.", "attn.")
                    .replace("intermediate.dense", "mlp.fc1").replace("output.dense", "mlp.fc2")
                    .replace("batch_norm", "bn0"))
            put("audio_branch." + name, k)
        else:
            put(k, k)
    # laion_clap modules transformers has no counterpart for: dropped
    laion.update({"module.audio_branch.spectrogram_extractor.stft.conv_real.weight": torch.zeros(3, 1, 4),
                  "module.audio_branch.logmel_extractor.melW": torch.zeros(4, 2),
                  "module.audio_branch.layers.0.blocks.0.attn_mask": torch.zeros(2, 2),
                  "module.audio_branch.tscam_conv.weight": torch.zeros(2, 2, 1, 1),
                  "module.audio_branch.head.weight": torch.zeros(2, 2),
                  "module.text_transform.sequential.0.weight": torch.zeros(2, 2)})
    return laion, expect


def test_laion_clap_pt_loads_into_clapmodel_and_scores_at_48khz(tmp_path):
    tiny = save_tiny_clap(tmp_path / "hf")
    laion, expect = _laion_clap_state(tiny)
    folder = tmp_path / "laion"
    folder.mkdir()
    torch.save({"epoch": 45, "state_dict": laion}, folder / "630k-audioset-best.pt")
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(tiny / f, folder / f)
    model = make("audio_text", f"clap:{folder / '630k-audioset-best.pt'}", {"batch_size": 2})
    assert model.sample_rate == 48000
    loaded, _ = model._load()
    state = loaded.state_dict()
    for k, v in expect.items():
        assert torch.equal(state[k], v), k
    rate = 48000
    t = np.arange(rate) / rate
    waves = np.stack([np.sin(2 * np.pi * 12000 * t), np.sin(2 * np.pi * 300 * t),
                      0.1 * np.random.default_rng(0).standard_normal(rate)]).astype(np.float32)
    seen = []
    fe = model._proc.feature_extractor
    real = fe.__class__.__call__
    fe.__class__.__call__ = lambda self, x, **kw: seen.append((len(x[0]), kw["sampling_rate"])) or real(self, x, **kw)
    try:
        s = model.similarity(waves, ["dog", "bird"])
    finally:
        fe.__class__.__call__ = real
    assert s.shape == (3, 2) and np.isfinite(s).all()
    assert seen[0] == (rate, rate)  # no resampling: a 12 kHz tone reaches the extractor
    assert make("audio_text", f"clap:{folder}").sample_rate == 48000  # the folder holding one .pt
    with pytest.raises(AudioTextError, match="fusion"):
        torch.save({"module.audio_branch.fusion_model.w": torch.zeros(1)}, tmp_path / "fused.pt")
        shutil.copy(tiny / "vocab.json", tmp_path / "vocab.json")
        shutil.copy(tiny / "merges.txt", tmp_path / "merges.txt")
        make("audio_text", f"clap:{tmp_path / 'fused.pt'}")._load()


def test_tab_scores_clips_decoded_at_the_models_rate(tmp_path):
    """The pipeline decodes the probing set at the audio-text model's rate (CLAP 48 kHz, not 16 kHz upsampled)."""
    from _tiny import write_config

    from and_engine.config import load_config
    from and_engine.pipeline.core import BuildContext, Progress
    from and_engine.pipeline.steps_dissect import _tab_matrix

    config = load_config(write_config(tmp_path, "", max_clips=2))
    config = Config(**{**config.__dict__, "probing_set": config.probing_set.__class__(
        **{**config.probing_set.__dict__, "clip_seconds": 0.5})})

    class Recorder:
        sample_rate = 48000
        shapes: list = []

        def similarity(self, waveforms, concepts):
            self.shapes.append(waveforms.shape)
            return np.zeros((len(waveforms), len(concepts)))

    ctx = BuildContext(config=config, store=None, run_id="r", progress=Progress(quiet=True))
    ctx.fingerprints[("clips", ())] = "fp"
    ctx.backends[("audio-text", config.module_a.audio_text_model)] = Recorder()
    _tab_matrix(ctx, ["dog"])
    assert Recorder.shapes == [(2, 24000)]  # 0.5 s at 48 kHz
