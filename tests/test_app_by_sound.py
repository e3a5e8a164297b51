"""Query by sound page (AppTest): an uploaded file and a recording run through the model; per layer the neurons
with the highest percentile, their explanations, maps and links; bad files get the probing set's reasons; no
upload is left on disk."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from _app_pages import run_page
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


def _links(at) -> list:
    return [link.proto for link in at.get("page_link")]


def test_an_uploaded_clip_lists_the_neurons_it_drives_per_layer(app_db, env):
    from and_engine.explorer import by_sound, queries
    from and_engine.store.results import ResultsStore

    at = run_page("pages/by_sound.py")
    assert not at.exception and "nothing is kept on disk" in at.info[0].value
    at.file_uploader(key="qs_upload").upload(CLIP.name, CLIP.read_bytes(), "audio/ogg").run()
    assert not at.exception and not at.error and not at.warning
    assert [s.value for s in at.subheader] == ["block1.conv", "block2.fc", "classifier"]
    links = _links(at)
    assert len(links) == 3 * 3 and all(link.page == "neuron" for link in links)  # 3 neurons per layer, each a link
    assert links[0].query_string.startswith("model=tinynet&layer=block1.conv&neuron=")
    assert len(at.get("audio")) == 1  # what the model heard
    images = [i for i in at.get("imgs")]
    assert len(images) == 3  # this clip's map of each block1.conv neuron (the only layer with a map grid)
    # the ranking is the engine's: the clip's activations against the stored probing set
    from _app_tiny_model import tiny_target_model

    model = tiny_target_model()
    wave = by_sound.decode_upload(CLIP.read_bytes(), CLIP.name, 16000, 5.0)
    with ResultsStore(app_db, read_only=True) as store:
        ref = {la: store.read_activations("tinynet", la) for la in queries.layers(store, "tinynet")["layer"]}
    acts, _ = by_sound.clip_activations(model, wave, model.layers(), "cls")
    want = by_sound.top_neurons(acts, ref, 3)
    assert [link.query_string.rsplit("=", 1)[1] for link in links] == [str(n) for n in want["neuron"]]
    shown = [m.value for m in at.markdown if m.value.startswith("percentile")]
    assert shown[0].startswith(f"percentile **{want['percentile'].iloc[0]:.1f}**")
    at.number_input(key="qs_per_layer").set_value(1).run()
    assert len(_links(at)) == 3
    assert [b.proto.label for b in at.get("download_button")] == ["Download this result"]
    assert list(env.iterdir()) == []  # the temporary copy of the upload is gone


def test_a_recording_is_queried_too(env):
    rate = 48000  # a browser records at its own rate: decoded like any probing clip
    t = np.arange(3 * rate) / rate
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format="WAV")
    at = run_page("pages/by_sound.py")
    at.audio_input(key="qs_record").upload(buf.getvalue(), "recording.wav", "audio/wav").run()
    assert not at.exception and not at.error
    assert len(_links(at)) == 9 and "recording.wav" in "".join(c.value for c in at.caption)


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
    assert reason in at.error[0].value and name.replace(".", "\\.") in at.error[0].value
    assert not _links(at) and list(env.iterdir()) == []
