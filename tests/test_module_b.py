"""Module B: splitting summaries into points, calibration at boundary thresholds, stored points."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from fakes import WordVectorEncoder

from and_engine.stages.module_b import (
    POINT_COLUMNS,
    SUMMARY_COLUMNS,
    ModuleBError,
    calibrate,
    calibrated_summaries,
    calibration_points,
    split_points,
)

SHARED = "The recordings have no background noise at all."
DISTINCT = "All clips contain a dog barking loudly outdoors."


def test_split_points_drops_chatter_markers_and_short_fragments():
    text = f"Sure! Here is a summary of the commonalities:\n1. {DISTINCT}\n2. {SHARED}\n3. Loud.\nI hope this helps!"
    assert split_points(text) == [DISTINCT, SHARED]
    three = "The clips feature loud dog barking in a park. Short one. They are recorded outdoors with wind. " \
            "The audio is high-pitched and clear throughout."
    assert split_points(three) == ["The clips feature loud dog barking in a park.",
                                   "They are recorded outdoors with wind.",
                                   "The audio is high-pitched and clear throughout."]
    assert split_points("") == [] and split_points(None) == []


def _points(cosines):
    return pd.DataFrame({"model": "m", "layer": "l", "neuron": 0, "point_index": range(len(cosines)),
                         "point": [f"p{i}" for i in range(len(cosines))], "best_match": "q",
                         "best_cosine": cosines})


@pytest.mark.parametrize("t, expected", [
    (0.7, "p1. p2. p3."),   # 0.7 exactly is kept: removal needs the cosine to *exceed* t
    (0.69, "p2. p3."),
    (0.5, "p2. p3."),
    (-1.0, "p3."),          # NaN (no S_l point) is never removed
    (1.0, "p0. p1. p2. p3."),
])
def test_calibrate_boundary_thresholds(t, expected):
    points = _points([1.0, 0.7, 0.5 - 1e-12, math.nan])
    marked, text = calibrate(points, t)
    assert text == expected
    assert calibrate(points.iloc[::-1], t)[1] == expected  # point order follows point_index, not row order
    assert marked["point_index"].tolist() == [0, 1, 2, 3]
    assert [f"p{i}." for i in marked.index[~marked["removed"]]] == expected.split()


def test_calibrate_rejects_a_nan_threshold():
    with pytest.raises(ModuleBError, match="threshold"):
        calibrate(_points([0.2]), float("nan"))


def test_calibration_removes_a_shared_point_and_keeps_a_distinct_one():
    summ = pd.DataFrame({
        "neuron": [0, 0, 1, 1, 2],
        "side": ["top", "bottom", "top", "bottom", "top"],
        "summary": [f"{DISTINCT} {SHARED}", f"{SHARED} The sound of heavy rain is steady here.",
                    "Too short.", "Whatever the bottom clips share is here.", DISTINCT],
    })
    enc = WordVectorEncoder()
    pts = calibration_points(summ, enc, model="m", layer="l")
    assert list(pts.columns) == POINT_COLUMNS
    n0 = pts[pts["neuron"] == 0].set_index("point")
    assert n0.loc[SHARED, "best_match"] == SHARED and n0.loc[SHARED, "best_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert n0.loc[DISTINCT, "best_cosine"] < 0.7
    assert pts.loc[pts["neuron"] == 2, "best_match"].isna().all()  # no S_l -> no match, NaN cosine
    cal = calibrated_summaries(pts, [0, 1, 2], 0.7, model="m", layer="l")
    assert list(cal.columns) == SUMMARY_COLUMNS
    cal = cal.set_index("neuron")
    assert cal.loc[0, "calibrated_summary"] == DISTINCT and cal.loc[0, "n_points"] == 2
    assert cal.loc[0, "n_removed"] == 1
    assert cal.loc[1, "calibrated_summary"] == "" and cal.loc[1, "n_points"] == 0  # kept as an empty row
    assert cal.loc[2, "calibrated_summary"] == DISTINCT
    # the app re-applies any threshold from the stored points, without the encoder
    calls = enc.calls
    assert calibrated_summaries(pts, [0], 1.0, model="m", layer="l")["n_removed"].tolist() == [0]
    assert enc.calls == calls


def test_calibration_points_validate_sides():
    with pytest.raises(ModuleBError, match="side"):
        calibration_points(pd.DataFrame({"neuron": [0], "side": ["high"], "summary": ["x"]}), WordVectorEncoder(),
                           model="m", layer="l")
    with pytest.raises(ModuleBError, match="columns"):
        calibration_points(pd.DataFrame({"neuron": [0]}), WordVectorEncoder(), model="m", layer="l")


LOUD = "All five clips are loud and forceful, blaring at high volume."
QUIET = "Four of the five clips are quiet, faint and hushed, barely audible."
TONAL = "Three of the five clips are tonal, with a steady pitched note."


def test_keep_opposites_never_lets_the_opposite_remove_a_point():
    summ = pd.DataFrame({"neuron": [0, 0], "side": ["top", "bottom"], "summary": [f"1. {LOUD}\n2. {TONAL}", QUIET]})
    paper = calibration_points(summ, WordVectorEncoder(), model="m", layer="l")
    assert paper["best_match"].tolist() == [QUIET, QUIET]  # the paper's rule: any S_l point may match
    assert calibrate(paper, -1.0)[1] == ""  # and a low threshold removes LOUD because S_l is QUIET
    kept = calibration_points(summ, WordVectorEncoder(), model="m", layer="l", keep_opposites=True)
    assert kept["best_match"].isna().tolist() == [True, False]  # LOUD has no non-opposite match; TONAL keeps it
    assert calibrate(kept, -1.0)[1] == LOUD


def test_opposites_are_found_on_every_axis_of_the_rule_glosses():
    from and_engine.text.polarity import opposite, poles
    from and_engine.text.rule_phrases import IDEAS

    pairs = [("loud", "quiet"), ("relatively-loud", "relatively-quiet"), ("high-pitched", "low-pitched"),
             ("high-frequency", "low-frequency"), ("tonal", "noisy"), ("continuous", "intermittent"),
             ("continuous", "brief"), ("repetitive", "intermittent"), ("dynamic", "even-level")]
    for a, b in pairs:
        assert opposite(IDEAS[a][1], IDEAS[b][1]) and opposite(IDEAS[b][1], IDEAS[a][1]), (a, b)
    for idea, (_, sentence) in IDEAS.items():
        assert not opposite(sentence.replace("{Count}", "All clips"), sentence.replace("{Count}", "Two clips")), idea
    assert opposite("The sound is softer than most.", "The sound is louder than most.")
    assert not opposite("The clips are loud and high-pitched.", "The clips are loud and piercing.")
    assert poles("It goes from quiet to loud.") == {}  # both sides of one axis: no side taken
