"""Export (explorer/export.py, ``python -m and_engine export``): a neuron, a layer, a model -> Parquet / JSON / CSV."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from and_engine.explorer import export, queries
from and_engine.store.results import ResultsStore


@pytest.fixture
def store(app_db):
    with ResultsStore(app_db, read_only=True) as s:
        yield s


def test_a_neuron_exports_what_the_neuron_page_shows(store):
    t = export.export_tables(store, "tinynet", "block1.conv", 3)
    assert {"neurons", "extremes", "closed_concepts", "open_concepts", "related_neurons", "activations",
            "provenance", "run"} <= set(t)
    values = queries.activations(store, "tinynet", "block1.conv", 3)
    n = t["neurons"].iloc[0]
    assert len(t["neurons"]) == 1 and n["neuron"] == 3 and n["n_clips"] == len(values)
    assert n["mean"] == pytest.approx(values.mean()) and n["share_above"] == pytest.approx((values > 0).mean())
    assert n["summary_top"] == queries.summaries(store, "tinynet", "block1.conv", 3)["top"]["summary"]
    assert n["calibrated_summary"] == queries.calibration(store, "tinynet", "block1.conv", 3)[1]["calibrated_summary"]
    ext = queries.extremes(store, "tinynet", "block1.conv", 3)
    assert t["extremes"][["side", "clip_id", "activation", "label"]].equals(ext[["side", "clip_id", "activation",
                                                                                 "label"]])
    assert t["extremes"]["rank"].tolist() == [1, 2, 3, 4, 5] * 2
    cols = ["method", "similarity", "rank", "concept", "score"]
    shown = queries.closed_concepts(store, "tinynet", "block1.conv", 3)
    assert t["closed_concepts"][cols].sort_values(cols).reset_index(drop=True).equals(
        shown.sort_values(cols).reset_index(drop=True))
    assert "step_id" not in t["closed_concepts"] and len(shown) > 0
    assert np.allclose(t["activations"]["activation"], values)
    scopes = set(t["provenance"]["scope"])
    assert {"-", "model=tinynet", "layer=block1.conv/model=tinynet"} <= scopes
    assert "layer=block2.fc/model=tinynet" not in scopes  # another layer's steps are not this neuron's
    assert json.loads(t["run"]["config_json"].iloc[0])["run"]["name"] == "fixture"


def test_a_layer_and_a_model(store):
    layer = export.export_tables(store, "tinynet", "block2.fc")
    assert len(layer["neurons"]) == 12 and "activations" not in layer and len(layer["extremes"]) == 12 * 10
    model = export.export_tables(store, "tinynet")
    # the three layers + the fixture's SAE layer (16 latents over block1.conv)
    assert len(model["neurons"]) == 8 + 12 + 6 + 16 and set(model["neurons"]["layer"]) == {
        "block1.conv", "block2.fc", "classifier", "block1.conv.sae"}
    with pytest.raises(queries.NotFoundError, match="no dissected layer 'nope'"):
        export.export_tables(store, "tinynet", "nope")
    with pytest.raises(queries.NotFoundError, match="out of range"):
        export.export_tables(store, "tinynet", "classifier", 6)


def test_every_format_reads_back(store, tmp_path):
    tables = export.export_tables(store, "tinynet", "classifier", 2)
    data, name, mime = export.export_bytes(tables, "parquet", "tinynet.classifier.2")
    assert name == "tinynet.classifier.2.parquet.zip" and mime == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        back = pd.read_parquet(io.BytesIO(zf.read("extremes.parquet")))
    assert back.equals(tables["extremes"])
    data, name, _ = export.export_bytes(tables, "json", "x")
    assert name == "x.json" and json.loads(data)["neurons"][0]["neuron"] == 2
    paths = export.write_export(tables, "csv", tmp_path / "out", "x")
    assert sorted(p.name for p in paths) == sorted(f"x.{t}.csv" for t in tables)
    assert pd.read_csv(tmp_path / "out" / "x.neurons.csv")["neuron"].tolist() == [2]
    with pytest.raises(ValueError, match="format"):
        export.export_bytes(tables, "xlsx", "x")


def test_csv_cells_a_spreadsheet_would_run_are_neutralised():
    csv = export.safe_csv(pd.DataFrame({"a": ["=1+1", "ok", "-x", "@SUM(A1)"], "b": [1, 2, 3, 4]})).decode()
    assert csv.splitlines() == ["a,b", "'=1+1,1", "ok,2", "'-x,3", "'@SUM(A1),4"]


def test_the_export_command(app_db, tmp_path, capsys):
    from and_engine.cli import main

    out = tmp_path / "exp"
    assert main(["export", "--db", str(app_db), "--model", "tinynet", "--layer", "block1.conv", "--neuron", "3",
                 "--format", "json", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "tinynet.block1.conv.3.json")
    assert main(["export", "--db", str(app_db), "--model", "tinynet", "--out", str(out)]) == 0
    assert (out / "tinynet.neurons.parquet").is_file()
    assert main(["export", "--db", str(app_db), "--model", "nope", "--out", str(out)]) == 1
    assert "model 'nope' has no dissected layers" in capsys.readouterr().err
    assert main(["export", "--db", str(tmp_path / "missing.duckdb"), "--model", "x"]) == 1
    assert "nothing built yet" in capsys.readouterr().err
