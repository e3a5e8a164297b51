"""Query by sound page (AppTest): an uploaded file and a recording run through the model; per layer the neurons
with the highest percentile, their explanations, maps and links; bad files get the probing set's reasons; no
upload is left on disk."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from _app_pages import chart_titles, run_page
from _app_tiny_model import patch_model_loader

from and_engine.config import PROJECT_ROOT

CLIP = PROJECT_ROOT / "data" / "demo" / "audio" / "crackling_fire" / "crackling_fire_05.ogg"


@pytest.fixture(autouse=True)
def env(app_db, monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setenv("AND_EXPLORER_DB", str(app_db))
    patch_model_loader(monkeypatch)  # the fixture's tinynet through the registry, for real
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _upload_copies(folder, data: bytes = b"") -> list:
    """Files under the temporary folder that hold an upload: named as ``decode_upload``'s copies, or with its
    bytes (the folder also gets AppTest's and torch's own working folders, which hold no upload)."""
    from and_engine.explorer.by_sound import UPLOAD_PREFIX

    return [p for p in folder.rglob("*") if p.name.startswith(UPLOAD_PREFIX)
            or (data and p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data)]


def _links(at) -> list:
    return [link.proto for link in at.get("page_link")]


def test_an_uploaded_clip_lists_the_neurons_it_drives_per_layer(app_db, env):
    from and_engine.explorer import by_sound, queries
    from and_engine.store.results import ResultsStore

    at = run_page("pages/by_sound.py")
    assert not at.exception and "nothing is kept on disk" in at.info[0].value
    at.file_uploader(key="qs_upload").upload(CLIP.name, CLIP.read_bytes(), "audio/ogg").run()
    assert not at.exception and not at.error and not at.warning
    layers = [s.value for s in at.subheader]
    assert {"block1.conv", "block2.fc", "classifier"} <= set(layers)  # in network order (+ the fixture's SAE layer)
    links = _links(at)
    assert len(links) == 3 * len(layers) and all(link.page == "neuron" for link in links)  # 3 per layer, links
    assert links[0].query_string.startswith(f"model=tinynet&layer={layers[0]}&neuron=")
    assert len(at.get("audio")) == 1  # what the model heard
    # tinynet's declared 4 x 10 grid does not fit its conv output (16 x 50): its maps are left out, the query stands
    assert not chart_titles(at) and "this layer keeps no time × frequency map" in [c.value for c in at.caption]
    # the ranking is the engine's: the clip's activations against the stored probing set
    from and_engine.explorer import aggregates, live

    wave = by_sound.decode_upload(CLIP.read_bytes(), CLIP.name, 16000, 5.0)
    with ResultsStore(app_db, read_only=True) as store:
        ref = {la: store.read_activations("tinynet", la) for la in queries.layers(store, "tinynet")["layer"]}
        model = live.load_model(queries.run_config(store), "tinynet", queries.clips(store).reset_index(),
                                aggregates.sae_checkpoints(store, "tinynet"))
    acts, _ = by_sound.clip_activations(model, wave, [model.layer(la) for la in ref], "cls")
    want = by_sound.top_neurons(acts, ref, 3)
    assert [link.query_string.rsplit("=", 1)[1] for link in links] == [str(n) for n in want["neuron"]]
    shown = [m.value for m in at.markdown if m.value.startswith("percentile")]
    assert shown[0].startswith(f"percentile **{want['percentile'].iloc[0]:.1f}**")
    at.number_input(key="qs_per_layer").set_value(1).run()
    assert len(_links(at)) == len(layers)
    assert [b.proto.label for b in at.get("download_button")] == ["Download this result"]
    assert _upload_copies(env, CLIP.read_bytes()) == []  # the temporary copy of the upload is gone


def test_a_recording_is_queried_too(env):
    rate = 48000  # a browser records at its own rate: decoded like any probing clip
    t = np.arange(3 * rate) / rate
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format="WAV")
    at = run_page("pages/by_sound.py")
    at.audio_input(key="qs_record").upload("recording.wav", buf.getvalue(), "audio/wav").run()
    assert not at.exception and not at.error
    captions = "".join(c.value for c in at.caption).replace("\\", "")  # unescaped Markdown
    assert len(_links(at)) == 3 * len(at.subheader) and "recording.wav" in captions


@pytest.mark.parametrize("name, data, reason", [
    ("silence.wav", "silent", "silent: peak"),
    ("empty.wav", b"", "empty file (0 bytes)"),
    ("notes.wav", b"just some text, not audio", "it starts with text"),
])
def test_bad_files_get_the_probing_sets_reasons(env, name, data, reason):
    if data == "silent":
        buf = io.BytesIO()
        sf.write(buf, np.zeros(16000), 16000, format="WAV")
        data = buf.getvalue()
    at = run_page("pages/by_sound.py")
    at.file_uploader(key="qs_upload").upload(name, data, "audio/wav").run()
    assert not at.exception
    shown = at.error[0].value.replace("\\", "")  # the page escapes Markdown (md): compare the plain text
    assert reason in shown and name in shown
    assert not _links(at) and _upload_copies(env, data) == []
