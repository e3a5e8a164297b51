"""Every page on a user's own folder: unlabelled (all clips in one sub-folder) and dissected with pretrained YAMNet
only, built the way the README tells a user (``kind = "folder"``, ``build``, the default concept set: the probing
labels). No page crashes; each view that has nothing to show says what is unavailable, why, and what to do
(docs/explore.md, "On your own folder")."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from _app_pages import chart_titles, run_page

from and_engine.config import PROJECT_ROOT, load_config
from and_engine.explorer import availability
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.store.results import ResultsStore
from pages._shared import md

DEMO_AUDIO = PROJECT_ROOT / "data" / "demo" / "audio"
CONFIG = """
[run]
name = "own-folder"
database = "{folder}/own.duckdb"
ratings_database = "{folder}/ratings.duckdb"
live_llm_database = "{folder}/live_llm.duckdb"
cache_dir = "{folder}/cache"

[probing_set]
kind = "folder"
path = "{folder}/sounds"

[[models]]
name = "yamnet"
kind = "yamnet"
layers = ["block2.pointwise", "classifier"]

[summaries.llm]
backend = "rule"

[analyses]
n_clusters = 4
elbow_max_k = 6
"""


@pytest.fixture(scope="module")
def own_folder(tmp_path_factory):
    """16 demo recordings in one sub-folder (no labels), built with pretrained YAMNet only -> the config path."""
    folder = tmp_path_factory.mktemp("own-folder")
    sounds = folder / "sounds" / "my_recordings"
    sounds.mkdir(parents=True)
    for path in sorted(DEMO_AUDIO.glob("*/*.ogg"))[::16]:
        shutil.copyfile(path, sounds / path.name)
    config_path = folder / "own.toml"
    config_path.write_text(CONFIG.format(folder=folder))
    build(load_config(config_path), Progress(quiet=True))
    return config_path


@pytest.fixture
def env(own_folder, monkeypatch, tmp_path):
    monkeypatch.setenv("AND_EXPLORER_CONFIG", str(own_folder))
    monkeypatch.delenv("AND_EXPLORER_DB", raising=False)
    monkeypatch.setenv("AND_EXPLORER_RATINGS", str(tmp_path / "ratings.duckdb"))
    return load_config(own_folder)


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def _says(elements, *parts: str) -> bool:
    """Whether one of the elements' texts holds every part (as the page writes it: markdown-escaped)."""
    return any(all(md(p) in text for p in parts) for text in _texts(elements))


ONE_LABEL = "one label ('my_recordings'"
CONCEPTS = ("the closed-set concepts are the probing labels (module_a.concept_set = \"probing-labels\") and the "
            "probing set has one label ('my_recordings': e.g. every clip in one sub-folder), so every neuron gets that "
            "one concept. Set module_a.concept_set = \"esc50\" (the 50 ESC-50 classes) or \"file:<a word list>\" "
            "and rebuild.")


def test_the_reasons_name_the_single_label_and_the_pretrained_classes(env, app_db):
    with ResultsStore(env.resolve(env.run.database), read_only=True) as db:
        assert availability.probing_labels(db) == ["my_recordings"]
        assert ONE_LABEL in availability.no_labels(db)
        assert "one sub-folder per sound source" in availability.no_labels(db)
        measure = availability.no_output_measure(db)
        assert "yamnet: its own 521 classes" in measure and ONE_LABEL in measure and "yamnet-frozen" in measure
        assert ONE_LABEL in availability.no_closed_concepts(db, "probing-labels")
        assert availability.no_closed_concepts(db, "esc50") is None  # a concept set of its own: concepts differ
    with ResultsStore(app_db, read_only=True) as db:  # labelled, and tinynet's classes are the labels
        assert availability.no_labels(db) is None and availability.no_output_measure(db) is None
        assert availability.no_closed_concepts(db, "probing-labels") is None


def test_the_reason_for_a_labelled_folder_asks_for_a_trained_variant():
    labels = ["cow", "dog"]
    pretrained = pd.DataFrame({"model": ["yamnet"], "class_names": [["Speech", "Dog"] + ["x"] * 519]})
    text = availability.output_reason(labels, pretrained)
    assert text.startswith("no model here has the probing labels as its classes (yamnet: its own 521 classes)")
    assert text.endswith(f"Add {availability.TRAINED} to the build: it learns the probing labels on the other folds")
    assert "one label" not in text
    own = pd.DataFrame({"model": ["yamnet-frozen"], "class_names": [["dog", "cow"]]})  # no held-out clip of them
    assert availability.output_reason(labels, own).startswith("no held-out clip is labelled with a class of "
                                                               "yamnet-frozen: set probing_set.heldout_fold")


def test_overview_says_why_ground_truth_and_last_layer_accuracy_are_missing(env):
    at = run_page("pages/overview.py")
    assert not at.exception and not at.error
    assert _says(at.info, "Ground truth is unavailable", ONE_LABEL, "one sub-folder per sound source")
    assert _says(at.info, "Last-layer accuracy is unavailable", "yamnet: its own 521 classes")
    assert "captions that name their clip's label" not in [m.label for m in at.metric]  # no 0 / 16 = 0 %
    assert "adjectives per neuron per block (Figure 5)" in chart_titles(at)
    assert any(t.startswith("median embedding") for t in chart_titles(at))  # scores need no labels


def test_neuron_page_shows_the_neuron_and_says_what_it_cannot(env):
    at = run_page("pages/neuron.py", {"model": "yamnet", "layer": "block2.pointwise", "neuron": "3"})
    assert not at.exception and not at.error
    assert _texts(at.warning) == [md("These concepts say nothing about this neuron: " + CONCEPTS)]
    assert _says(at.caption, "Ground truth (does an explanation name the top-K clips' label?) is unavailable",
                 ONE_LABEL)
    assert not any("majority label" in c for c in _texts(at.caption))
    assert _says(at.info, "Unavailable for yamnet: no model here has the probing labels as its classes", ONE_LABEL)
    assert _says(at.info, "this database holds one model")  # related neurons in other models
    scored = at.dataframe[[i for i, d in enumerate(at.dataframe) if "explanation" in d.value.columns][0]].value
    assert "names_majority" not in scored.columns and "embedding pearson_r" in scored.columns
    assert len(at.get("audio")) == 10  # top-K, bottom-K (the quantile clips' players on demand)


def test_pruning_and_compare_say_why_and_what_to_do(env):
    at = run_page("pages/pruning.py")
    assert not at.exception and not at.error
    assert _says(at.warning, "Concept-specific pruning is unavailable", ONE_LABEL, "yamnet-frozen")
    at = run_page("pages/compare.py")
    assert not at.exception and "holds one model (yamnet)" in at.warning[0].value


def test_concepts_human_evaluation_and_query_by_sound_work(env):
    at = run_page("pages/concepts.py")
    assert not at.exception and not at.error
    assert _says(at.warning, "A search by closed-set concept finds every neuron or none", CONCEPTS)
    assert "adjectives (all models)" in chart_titles(at)
    at.text_input(key="cc_term").input("loud").run()
    assert not at.exception and at.caption[0].value.endswith("match(es)")
    at = run_page("pages/human_eval.py")
    at.text_input(key="he_rater").input("ann").run()
    assert not at.exception and not at.error
    assert _says(at.warning, "The DB and TAB descriptions are one word for every neuron", CONCEPTS)
    assert len([m for m in at.markdown if m.value.startswith("**Description")]) == 3
    at = run_page("pages/by_sound.py", timeout=120)
    clip = DEMO_AUDIO / "crackling_fire" / "crackling_fire_05.ogg"
    at.file_uploader(key="qs_upload").upload(clip.name, clip.read_bytes(), "audio/ogg").run()
    assert not at.exception and not at.error and not at.warning
    assert [s.value for s in at.subheader] == ["block2.pointwise", "classifier"]
