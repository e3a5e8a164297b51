"""Model identity: same name, different content -> different identity; hub ids pass through."""

from __future__ import annotations

from and_engine.model_identity import model_identity


def test_files_with_the_same_name_differ_by_content(tmp_path):
    a, b = tmp_path / "v1" / "ggml-model-Q4_K_M.gguf", tmp_path / "v2" / "ggml-model-Q4_K_M.gguf"
    for path, content in [(a, b"weights one"), (b, b"weights two")]:
        path.parent.mkdir()
        path.write_bytes(content)
    assert model_identity(a).startswith("ggml-model-Q4_K_M.gguf#")
    assert model_identity(a) != model_identity(b)
    assert model_identity(a) == model_identity(str(a))  # stable
    b.write_bytes(b"weights one")  # replaced in place with the same content -> same identity
    assert model_identity(a) == model_identity(b)


def test_directories_cover_weights_and_config(tmp_path):
    ckpt = tmp_path / "ast"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"hidden_size": 8}')
    (ckpt / "model.safetensors").write_bytes(b"\0" * (3 << 20))
    before = model_identity(ckpt)
    (ckpt / "model.safetensors").write_bytes(b"\1" * (3 << 20))  # retrained in place, same size
    assert model_identity(ckpt) != before
    (ckpt / "notes.md").write_text("not a model file")
    assert model_identity(ckpt) == model_identity(ckpt)


def test_non_paths_are_kept_whole():
    assert model_identity("meta-llama/Llama-2-13b-chat-hf") == "meta-llama/Llama-2-13b-chat-hf"
    assert model_identity("myorg/Llama-2-13b-chat-hf") != model_identity("meta-llama/Llama-2-13b-chat-hf")
    assert model_identity("") == ""
