"""Every configuration value and name is checked when the configuration is loaded, before anything runs
(issue 12, items 5 and 14): constraints are declared next to each field, names against the registries."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from and_engine.config import Config, ConfigError, ModelConfig, check_config, config_from_dict, rules
from and_engine.pipeline import graph
from and_engine.pipeline.validate import name_problems, validate


@pytest.mark.parametrize("data, match", [
    ({"activations": {"top_k": 5.9}}, r"activations.top_k must be a whole number, got 5.9"),
    ({"run": {"seed": 1.5}}, r"run.seed must be a whole number"),
    ({"module_a": {"similarities": [1, 2]}}, r"module_a.similarities\[0\] must be a string"),
    ({"analyses": {"taus": ["3"]}}, r"analyses.taus\[0\] must be a number"),
    ({"activations": {"top_k": -1}}, r"activations.top_k must be >= 1, got -1"),
    ({"activations": {"top_k": 0}}, r"activations.top_k must be >= 1"),
    ({"module_b": {"threshold": 7}}, r"module_b.threshold must be between 0 and 1, got 7.0"),
    ({"module_b": {"threshold": float("nan")}}, r"module_b.threshold must be a finite number"),
    ({"probing_set": {"clip_seconds": 0}}, r"probing_set.clip_seconds must be > 0"),
    ({"probing_set": {"silence_dbfs": 3}}, r"probing_set.silence_dbfs must be <= 0"),
    ({"probing_set": {"max_clips": -2}}, r"probing_set.max_clips must be >= 0"),
    ({"probing_set": {"kind": "zip"}}, r"probing_set.kind must be one of demo, esc50, folder, csv"),
    ({"models": [{"name": "a"}, {"name": "a", "kind": "yamnet-frozen"}]}, r"model names must be unique; repeated: a"),
    ({"models": [{"name": "yamnet:v2"}]}, r"models\[0\].name must be a name of letters"),
    ({"models": [{"name": "a/b"}]}, r"models\[0\].name must be a name"),
    ({"models": [{"name": "a", "kind": "yamnet2"}]}, r"models\[0\].kind must be one of yamnet, yamnet-frozen"),
    ({"models": [{"name": "a", "kind": "ast-checkpoint"}]}, r"models\[0\].checkpoint must name"),
    ({"models": [{"name": "a", "layers": ["b1", "b1"]}]}, r"models\[0\].layers must be free of repeats"),
    ({"models": [{"name": "a", "train_lr": -0.1}]}, r"models\[0\].train_lr must be >= 0"),
    ({"activations": {"pool": "avg"}}, r"activations.pool must be one of cls, mean, max"),
    ({"activations": {"batch_size": 0}}, r"activations.batch_size must be >= 1"),
    ({"captions": {"tag_threshold": 1.5}}, r"captions.tag_threshold must be between 0 and 1"),
    ({"captions": {"prompt": "  "}}, r"captions.prompt must be non-empty"),
    ({"summaries": {"llm": {"top_p": 0}}}, r"summaries.llm.top_p must be > 0"),
    ({"summaries": {"llm": {"temperature": -1}}}, r"summaries.llm.temperature must be >= 0"),
    ({"summaries": {"overrides": [{"models": ["nope"]}]}}, r"overrides\[0\].models names no configured model: nope"),
    ({"summaries": {"overrides": [{"sample_neurons": -1}]}}, r"overrides\[0\].sample_neurons must be >= 0"),
    ({"module_a": {"similarities": []}}, r"module_a.similarities must be non-empty"),
    ({"module_a": {"similarities": ["cos", "cos"]}}, r"module_a.similarities must be free of repeats"),
    ({"module_a": {"db_scope": "some"}}, r"module_a.db_scope must be one of all, topk"),
    ({"module_a": {"top_n": 2}}, r"closed_top_n_for_pruning \(3\) must be <= module_a.top_n \(2\)"),
    ({"analyses": {"prune_percents": [0.0]}}, r"analyses.prune_percents must be a list whose items are > 0"),
    ({"analyses": {"prune_percents": [150.0]}}, r"analyses.prune_percents must be a list whose items are <= 100"),
    ({"analyses": {"seeds": [-1]}}, r"analyses.seeds must be a list whose items are >= 0"),
    ({"analyses": {"taus": [0]}}, r"analyses.taus must be a list whose items are >= 1"),
    ({"analyses": {"n_clusters": 0}}, r"analyses.n_clusters must be >= 1"),
    ({"run": {"ratings_database": "data/build/demo.duckdb"}}, r"ratings_database must differ from run.database"),
    ({"scores": {"activating_fraction": 0.6}}, r"scores.activating_fraction must be <= 0.5, got 0.6"),
    ({"scores": {"n_activating": 0}}, r"scores.n_activating must be >= 1"),
    ({"scores": {"scorers": ["embedding", "embedding"]}}, r"scores.scorers must be free of repeats"),
    ({"scores": {"llm_clips_per_prompt": 0}}, r"scores.llm_clips_per_prompt must be >= 1"),
])
def test_a_bad_value_is_refused_when_the_configuration_is_loaded(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_every_problem_is_listed_at_once_and_good_values_pass():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"activations": {"top_k": 0, "batch_size": 0}, "module_b": {"threshold": 2}})
    assert str(err.value).count(" must be ") == 3
    cfg = config_from_dict({"activations": {"top_k": 5.0}, "module_b": {"threshold": 1},
                            "models": [{"name": "yamnet.v2_b-1"}]})
    assert cfg.activations.top_k == 5 and isinstance(cfg.activations.top_k, int) and cfg.module_b.threshold == 1.0


# keys without a declared value constraint, and why: validate.name_problems checks the names; the rest are free
NAMES = {"models[].options", "activations.precision", "captions.backend", "captions.tagger", "summaries.llm.backend",
         "summaries.overrides[].llm.backend", "module_a.concept_set", "module_a.text_encoder",
         "module_a.audio_text_model", "module_b.sentence_encoder", "module_c.tagger", "analyses.sentence_encoder",
         "analyses.pruning_similarity", "scores.text_encoder", "scores.audio_text_model", "ground_truth.label_words"}
FREE = {
    "models[].checkpoint": "required for ast-checkpoint (a constraint between keys); a path or a cached model id",
    "summaries.llm.quantization": "a vLLM quantization method name (\"\" = none); vLLM checks it",
    "summaries.overrides[].llm.quantization": "as summaries.llm.quantization",
    "captions.model_path": "required by the audio-llm backend, which checks it",
    "summaries.llm.model": "a file, directory or served name; the LLM backend checks it",
    "summaries.llm.base_url": "the openai backend checks it",
    "summaries.overrides[].llm.model": "as summaries.llm.model", "summaries.overrides[].llm.base_url": "as base_url",
}


def _declared(key: str) -> bool:
    """Whether ``key`` (dotted, ``models[].x``) has an ``Annotated`` rule, or is a bool (its type says it all)."""
    cls, *parts = [Config, *key.split(".")]
    for part in parts[:-1]:
        hint = typing.get_type_hints(cls)[part.removesuffix("[]")]
        cls = typing.get_args(hint)[0] if part.endswith("[]") else hint
    return bool(rules(cls, parts[-1])) or typing.get_type_hints(cls)[parts[-1]] is bool


def test_every_key_has_a_declared_constraint_a_name_check_or_a_reason():
    undeclared = [k for k in graph.config_keys() if not _declared(k) and k not in NAMES and k not in FREE]
    assert undeclared == []


def test_every_name_is_checked_before_anything_runs(tmp_path):
    cfg = Config(models=(ModelConfig(name="a"), ModelConfig(name="b", kind="yamnet-frozen",
                                                            options={"include_depthwise": True, "hidden": 3})))
    cfg = dataclasses.replace(
        cfg, summaries=dataclasses.replace(cfg.summaries, llm=dataclasses.replace(cfg.summaries.llm, backend="gpt")),
        captions=dataclasses.replace(cfg.captions, backend="salmonn", tagger="panns"),
        activations=dataclasses.replace(cfg.activations, precision="float8"),
        module_a=dataclasses.replace(cfg.module_a, text_encoder="bert", audio_text_model="clap",
                                     similarities=("cos", "cosine"), concept_set="imagenet"),
        module_b=dataclasses.replace(cfg.module_b, sentence_encoder="mpnet"),
        module_c=dataclasses.replace(cfg.module_c, tagger="stanza"),
        analyses=dataclasses.replace(cfg.analyses, sentence_encoder="clip", pruning_similarity="bestest"))
    problems = "\n".join(name_problems(cfg))
    for expected in ("unknown backend 'gpt'", "unknown backend 'salmonn'", "unknown tagger 'panns'",
                     "unknown text encoder 'bert'", "unknown model 'clap'", "unknown text encoder 'mpnet'",
                     "unknown tagger 'stanza'", "unknown text encoder 'clip'", "['cosine']", "'bestest'",
                     "'float8'", "unknown concept set 'imagenet'", "unknown option(s) ['hidden']"):
        assert expected in problems
    assert len(name_problems(cfg)) == 13
    missing = dataclasses.replace(cfg.module_a, concept_set=f"file:{tmp_path}/none.txt")
    assert "word list not found" in "".join(name_problems(dataclasses.replace(Config(), module_a=missing)))
    assert validate(Config()) == Config() and name_problems(Config()) == []


def test_scorer_names_and_the_label_words_file_are_checked_before_anything_runs(tmp_path):
    cfg = Config()
    bad = dataclasses.replace(
        cfg, scores=dataclasses.replace(cfg.scores, scorers=("embedding", "vibes"), llm_scorers=("judge",),
                                        text_encoder="bert", audio_text_model="clap"),
        ground_truth=dataclasses.replace(cfg.ground_truth, label_words=str(tmp_path / "none.csv")))
    problems = "\n".join(name_problems(bad))
    for expected in ("scores.scorers: unknown scorer(s) ['vibes']; known: embedding, audio-text",
                     "scores.llm_scorers: unknown scorer(s) ['judge']; known: detection, simulation",
                     "unknown text encoder 'bert'", "unknown model 'clap'", "label_words: file not found"):
        assert expected in problems
    no_scorers = dataclasses.replace(cfg, scores=dataclasses.replace(bad.scores, scorers=(), llm_scorers=()))
    assert name_problems(no_scorers) == []  # the encoders of scorers that do not run are not loaded


def test_a_build_with_a_bad_name_runs_nothing(tmp_path):
    """A typo in the second model's options used to fail after the first model was retrained and its results
    replaced: now the build refuses before it creates the database or the checkpoint cache."""
    from and_engine.pipeline.build import build

    run = dataclasses.replace(Config().run, database=str(tmp_path / "r.duckdb"), cache_dir=str(tmp_path / "cache"))
    cfg = Config(run=run, models=(ModelConfig(name="tuned", kind="yamnet-frozen"),
                                  ModelConfig(name="typo", kind="yamnet", options={"include_depthwse": True})))
    with pytest.raises(ConfigError, match="include_depthwse"):
        build(cfg)
    assert not (tmp_path / "r.duckdb").exists() and not (tmp_path / "cache").exists()
    bad_kind = dataclasses.replace(cfg, models=(ModelConfig(name="tuned", kind="yamnet-frozen"),
                                                ModelConfig(name="typo", kind="yamnet-fronzen")))
    with pytest.raises(ConfigError, match="yamnet-fronzen"):
        build(bad_kind)
    with pytest.raises(ConfigError):
        check_config(bad_kind)
    assert not (tmp_path / "r.duckdb").exists()


def test_the_shipped_configurations_validate():
    from and_engine.config import PROJECT_ROOT, load_config

    for path in sorted((PROJECT_ROOT / "configs").glob("*.toml")):
        assert validate(load_config(path))
