"""Configuration files: defaults, validation with the offending key, the shipped configs load."""

from __future__ import annotations

import pytest

from and_engine.config import PROJECT_ROOT, Config, ConfigError, config_from_dict, load_config


def test_defaults_and_hash_are_stable():
    assert Config().config_hash() == Config().config_hash()
    assert Config().module_b.threshold == 0.7 and Config().activations.top_k == 5
    assert Config().module_a.similarities == ("cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi")


def test_nested_tables_and_arrays():
    cfg = config_from_dict({
        "run": {"name": "x"},
        "models": [{"name": "a", "kind": "yamnet"}, {"name": "b", "kind": "ast-checkpoint", "checkpoint": "/m"}],
        "summaries": {"llm": {"backend": "rule"}, "overrides": [
            {"llm": {"backend": "openai", "base_url": "http://127.0.0.1:8000/v1"}, "layers": ["classifier"]}]},
        "module_b": {"threshold": 0.5},
    })
    assert [m.name for m in cfg.models] == ["a", "b"]
    assert cfg.summaries.overrides[0].layers == ("classifier",)
    assert cfg.summaries.overrides[0].llm.backend == "openai"
    assert cfg.module_b.threshold == 0.5 and cfg.config_hash() != Config().config_hash()


@pytest.mark.parametrize("data, match", [
    ({"run": {"nmae": "x"}}, r"unknown key\(s\) in \[config.run\]: nmae"),
    ({"module_b": {"threshold": "high"}}, "config.module_b.threshold must be a number"),
    ({"models": []}, "non-empty array"),
    ({"activations": {"keep_maps": 1}}, "true or false"),
    ({"module_a": {"similarities": "cos"}}, "must be an array"),
    ({"run": 3}, "must be a table"),
])
def test_bad_values_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname=1")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_shipped_configs_load():
    configs = sorted((PROJECT_ROOT / "configs").glob("*.toml"))
    assert any(p.name == "demo.toml" for p in configs)
    for path in configs:
        load_config(path)
