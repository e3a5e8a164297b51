"""Configuration: a TOML file -> frozen dataclasses with documented defaults.

Every field is a **param** of SPEC.md and is stored with the results (``Config.to_dict`` goes into the
``runs`` table; each step stores the part of it that produced its rows). Paths in a config file are
resolved relative to the project root (the folder holding ``and_engine/``), or are absolute.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROBING_KINDS = ("demo", "esc50", "folder", "csv")
MODEL_KINDS = ("yamnet", "yamnet-frozen", "yamnet-finetuned", "ast-scratch", "ast-checkpoint")
# options of every kind (normalization: ast-checkpoint without a preprocessor_config.json); ast-scratch's others
# go to ASTConfig
MODEL_OPTIONS = ("include_depthwise", "batch_size", "normalization")
SAE_SUFFIX = ".sae"  # the SAE layer trained on layer L is named L + SAE_SUFFIX (docs/sae.md)


def sae_layer_name(layer: str) -> str:
    """The name of the SAE layer trained on ``layer`` (``block13.pointwise`` -> ``block13.pointwise.sae``)."""
    return layer + SAE_SUFFIX


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the key."""


# ---------- constraints on values, declared next to each field as ``Annotated[type, rule, ...]`` ----------
@dataclass(frozen=True)
class Rule:
    """A constraint on one value: ``test(value) -> bool`` and what it asks for, in words."""

    test: Callable[[Any], bool]
    text: str


def at_least(low: float) -> Rule:
    return Rule(lambda v: v >= low, f">= {low}")


def at_most(high: float) -> Rule:
    return Rule(lambda v: v <= high, f"<= {high}")


def above(low: float) -> Rule:
    return Rule(lambda v: v > low, f"> {low}")


def between(low: float, high: float) -> Rule:
    return Rule(lambda v: low <= v <= high, f"between {low} and {high}")


def one_of(*choices: str) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(choices))


def each(rule: Rule) -> Rule:
    return Rule(lambda v: all(rule.test(x) for x in v), f"a list whose items are {rule.text}")


NONEMPTY = Rule(lambda v: len(v.strip() if isinstance(v, str) else v) > 0, "non-empty")
UNIQUE = Rule(lambda v: len(set(v)) == len(v), "free of repeats")
DEVICE = Rule(lambda v: re.fullmatch(r"(cpu|cuda)(:\d+)?|auto", v.strip().lower()) is not None,
              "a device: cpu, cuda, cuda:N or auto")
# a model's name is a scope value ("model=<name>" in steps.scope, "/"-joined), a file-name part and a URL
# parameter: letters, digits, '.', '_', '-' only
NAME = Rule(lambda v: re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v) is not None,
            "a name of letters, digits, '.', '_' or '-' (starting with a letter or digit)")


@dataclass(frozen=True)
class RunConfig:
    name: Annotated[str, NONEMPTY] = "demo"
    database: Annotated[str, NONEMPTY] = "data/build/demo.duckdb"  # results database (DuckDB)
    # human evaluation, separate so rebuilds never touch it
    ratings_database: Annotated[str, NONEMPTY] = "data/build/ratings.duckdb"
    cache_dir: Annotated[str, NONEMPTY] = "data/cache"  # model checkpoints of trained variants, downloaded nothing
    seed: Annotated[int, at_least(0)] = 0


@dataclass(frozen=True)
class ProbingSetConfig:
    kind: Annotated[str, one_of(*PROBING_KINDS)] = "demo"  # demo | esc50 | folder | csv
    path: Annotated[str, NONEMPTY] = "data/demo"  # root folder (demo / esc50 / folder) or the CSV file (csv)
    clip_seconds: Annotated[float, above(0)] = 5.0  # every clip padded / trimmed to this length
    min_seconds: Annotated[float, at_least(0)] = 0.25  # shorter files are reported and skipped
    silence_dbfs: Annotated[float, at_most(0)] = -70.0  # a file peaking below this is reported as silent and skipped
    heldout_fold: Annotated[int, at_least(0)] = 1  # the fold that trained variants never see and pruning evaluates on
    max_clips: Annotated[int, at_least(0)] = 0  # 0 = all; >0 keeps a stratified subset (for quick tests)


@dataclass(frozen=True)
class ModelConfig:
    name: Annotated[str, NAME] = "yamnet"
    kind: Annotated[str, one_of(*MODEL_KINDS)] = "yamnet"  # MODEL_KINDS
    checkpoint: str = ""  # ast-checkpoint: a local directory (or a model id in the local HF cache)
    layers: Annotated[tuple[str, ...], each(NONEMPTY), UNIQUE] = ()  # empty = every dissectable layer
    train_epochs: Annotated[int, at_least(0)] = 0  # trained variants; 0 = the model kind's default
    train_lr: Annotated[float, at_least(0)] = 0.0  # 0 = the model kind's default
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific extras (e.g. AST size)
    # layers to train a sparse autoencoder on; each adds the layer <name>.sae of its latents ([sae], docs/sae.md)
    sae_layers: Annotated[tuple[str, ...], each(NONEMPTY), UNIQUE] = ()


@dataclass(frozen=True)
class ActivationsConfig:
    pool: Annotated[str, one_of("cls", "mean", "max")] = "cls"  # token pooling for transformers: cls | mean | max
    batch_size: Annotated[int, at_least(1)] = 16
    top_k: Annotated[int, at_least(1)] = 5  # K of top-K / bottom-K
    keep_maps: bool = True  # keep per-position maps for each neuron's top-K clips
    # cpu | cuda | cuda:N | auto (CUDA when available): forward passes and the AST front end
    device: Annotated[str, DEVICE] = "cpu"
    num_threads: Annotated[int, at_least(0)] = 1  # torch CPU threads, forward passes and training (0 = torch's default)
    precision: str = "float32"  # float32 | bfloat16 (autocast forward passes: ~3x faster on AVX512-BF16 CPUs)
    compile: bool = False  # torch.compile the forward pass (pays off from a few thousand clips; docs/models.md)


@dataclass(frozen=True)
class CaptionsConfig:
    backend: str = "features"  # features | audio-llm
    model_path: str = ""  # audio-llm: local model directory
    prompt: Annotated[str, NONEMPTY] = "Please describe the audio in detail."
    batch_size: Annotated[int, at_least(1)] = 8
    # audio-llm: cpu | cuda | cuda:N | auto; weights in bfloat16 on CUDA, float32 on CPU
    device: Annotated[str, DEVICE] = "cpu"
    max_new_tokens: Annotated[int, at_least(1)] = 256
    tagger: str = "yamnet"  # features: AudioSet tagger for the sound-source labels (yamnet | none)
    tag_threshold: Annotated[float, between(0, 1)] = 0.3  # features: a tagger label is named when its score is >= this
    max_tags: Annotated[int, at_least(0)] = 3  # features: at most this many labels per caption


@dataclass(frozen=True)
class LLMConfig:
    backend: str = "rule"  # rule | llama-cpp | transformers | vllm | openai
    model: str = ""  # model file / directory / served model name
    base_url: str = ""  # openai backend
    temperature: Annotated[float, at_least(0)] = 0.0
    top_p: Annotated[float, above(0), at_most(1)] = 1.0
    max_new_tokens: Annotated[int, at_least(1)] = 1024
    seed: Annotated[int, at_least(0)] = 0
    timeout_s: Annotated[float, above(0)] = 120.0
    batch_size: Annotated[int, at_least(1)] = 8
    # prompts between two llm_cache commits (a crash loses at most these); 0 = the backend's default
    commit_every: Annotated[int, at_least(0)] = 0
    # local engines (transformers, llama-cpp, vllm); docs/gpu.md. Defaults fit an 8B model on one 24 GB card.
    device: Annotated[str, DEVICE] = "auto"  # transformers / llama-cpp: cpu | cuda | cuda:N | auto
    # transformers / vllm weights: auto (bf16 on CUDA, fp32 on CPU) | bfloat16 | float16 | float32
    dtype: Annotated[str, one_of("auto", "bfloat16", "float16", "float32")] = "auto"
    quantization: str = ""  # vllm: "" = none or the checkpoint's own; awq | gptq | fp8 | bitsandbytes ...
    # llama-cpp on a CUDA device: layers offloaded to the GPU (-1 = all); none on CPU
    n_gpu_layers: Annotated[int, at_least(-1)] = -1
    tensor_parallel_size: Annotated[int, at_least(1)] = 1  # vllm: GPUs one model is split over
    # vllm: context length (an 8B model's own 131k does not fit 24 GB); 0 = the model's
    max_model_len: Annotated[int, at_least(0)] = 8192
    # vllm: share of the GPU's memory it takes (weights + KV cache)
    gpu_memory_utilization: Annotated[float, above(0), at_most(1)] = 0.85
    max_num_seqs: Annotated[int, at_least(0)] = 0  # vllm: sequences scheduled at once; 0 = vLLM's default


@dataclass(frozen=True)
class SummaryOverride:
    """A different LLM for a subset: matching model/layers and optionally a sample of neurons."""

    llm: LLMConfig = field(default_factory=LLMConfig)
    models: Annotated[tuple[str, ...], each(NONEMPTY)] = ()  # empty = all models
    layers: Annotated[tuple[str, ...], each(NONEMPTY)] = ()  # empty = all layers
    sample_neurons: Annotated[int, at_least(0)] = 0  # 0 = every neuron; >0 = a seeded sample per layer


@dataclass(frozen=True)
class SummariesConfig:
    llm: LLMConfig = field(default_factory=LLMConfig)
    overrides: tuple[SummaryOverride, ...] = ()


@dataclass(frozen=True)
class ModuleAConfig:
    concept_set: str = "probing-labels"  # probing-labels | esc50 | file:<path to a word list>
    text_encoder: str = "minilm"  # minilm | clip:<local open_clip/transformers checkpoint>
    audio_text_model: str = "yamnet-labels"  # yamnet-labels | clap:<local checkpoint>
    similarities: Annotated[tuple[str, ...], NONEMPTY, UNIQUE] = ("cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi")
    db_scope: Annotated[str, one_of("all", "topk")] = "all"  # all | topk
    icl: bool = True
    # ICL reads S_h ("top", SPEC section 6) or S_h^c ("calibrated", the paper's 3.3 / A.3)
    icl_summary: Annotated[str, one_of("top", "calibrated")] = "top"
    top_n: Annotated[int, at_least(1)] = 5


@dataclass(frozen=True)
class ModuleBConfig:
    threshold: Annotated[float, between(0, 1)] = 0.7  # the paper's text; its code used 0.5
    sentence_encoder: str = "minilm"
    keep_opposites: bool = False  # true: an S_l point claiming the opposite (quiet vs loud) never removes an S_h point


@dataclass(frozen=True)
class ModuleCConfig:
    tagger: str = "auto"  # auto | nltk | textblob | spacy
    adjective_filter: bool = True


@dataclass(frozen=True)
class AnalysesConfig:
    n_clusters: Annotated[int, at_least(1)] = 11
    elbow_max_k: Annotated[int, at_least(1)] = 20
    taus: Annotated[tuple[int, ...], each(at_least(1)), UNIQUE] = (3, 4, 5)
    prune_percents: Annotated[tuple[float, ...], each(above(0)), each(at_most(100)), UNIQUE] = (
        2.0, 4.0, 6.0, 8.0, 10.0, 12.0)
    seeds: Annotated[tuple[int, ...], each(at_least(0)), UNIQUE] = (0, 1, 2)
    closed_top_n_for_pruning: Annotated[int, at_least(1)] = 3
    basic_adjectives: Annotated[tuple[str, ...], each(NONEMPTY)] = ("high-pitched", "high-quality", "clear", "loud")
    sentence_encoder: str = "minilm"  # caption-sentence clusters and the concept cosine of Table 2
    pruning_similarity: str = "best"  # DB/TAB selection: "best" = best last-layer top-1 per method, or a name
    prune_classifier: bool = False  # pruning / feature importance may also zero classifier units
    acoustic_adjectives: Annotated[tuple[str, ...], each(NONEMPTY)] = ("loud", "high-pitched")  # Appendix C checks
    top_adjectives_n: Annotated[int, at_least(1)] = 20  # Figure 3 / 9 histogram length
    cluster_words_n: Annotated[int, at_least(1)] = 40  # words kept per cluster for the word clouds
    # pruning / feature importance: threads evaluating clip chunks at once (0 = one per CPU core)
    workers: Annotated[int, at_least(0)] = 0
    related_top_n: Annotated[int, at_least(1)] = 5  # related neurons kept per neuron and relation (correlation)


@dataclass(frozen=True)
class SaeConfig:
    """The TopK sparse autoencoders of ``models[].sae_layers`` (docs/sae.md)."""

    expansion: Annotated[int, at_least(1)] = 4  # latents = expansion x the layer's width
    k: Annotated[int, at_least(1)] = 32  # latents active per frame / patch vector
    epochs: Annotated[int, at_least(1)] = 30  # passes over the training vectors
    lr: Annotated[float, at_least(0)] = 0.0  # Adam's; 0 = 2e-4 / sqrt(latents / 2^14) (sparsify's rule)
    batch_size: Annotated[int, at_least(1)] = 512  # vectors per training step
    max_vectors: Annotated[int, at_least(1)] = 100_000  # a seeded sample of the training clips' vectors, at most


@dataclass(frozen=True)
class DeviceConfig:
    """Where the torch components without a section of their own run (activations, captions and the LLM have
    their own ``device`` keys). Encoders keep float32 weights: they are cheap, and their results stay exact."""

    # MiniLM / sentence-transformers / CLIP text towers: cpu | cuda | cuda:N | auto
    text_encoders: Annotated[str, DEVICE] = "cpu"
    audio_text: Annotated[str, DEVICE] = "cpu"  # CLAP (Module A's TAB): cpu | cuda | cuda:N | auto
    text_batch_size: Annotated[int, at_least(1)] = 64  # texts per encoder forward pass
    audio_batch_size: Annotated[int, at_least(1)] = 16  # clips per audio-text forward pass


@dataclass(frozen=True)
class ScoresConfig:
    """Scores of every explanation on clips it was not written from (docs/scores.md)."""

    # the scorers without an LLM, run on every neuron (names checked in pipeline/validate.py)
    scorers: Annotated[tuple[str, ...], UNIQUE] = ("embedding", "audio-text")
    # detection | simulation: the summaries' LLM judges captions (LLM cost)
    llm_scorers: Annotated[tuple[str, ...], UNIQUE] = ()
    # scoring clips drawn evenly from the activation quantiles of the top fraction
    n_activating: Annotated[int, at_least(1)] = 20
    # scoring clips drawn from the bottom half (never the top-K / bottom-K)
    n_non_activating: Annotated[int, at_least(1)] = 20
    activating_fraction: Annotated[float, above(0), at_most(0.5)] = 0.2  # the top share that counts as activating
    text_encoder: str = "minilm"  # embedding scorer: explanation vs each scoring clip's caption
    audio_text_model: str = "yamnet-labels"  # audio-text scorer: explanation vs the clip audio
    llm_neurons: Annotated[int, at_least(0)] = 0  # LLM scorers: 0 = every neuron, n = a seeded sample of n per layer
    llm_clips_per_prompt: Annotated[int, at_least(1)] = 10  # LLM scorers: captions shown in one prompt


@dataclass(frozen=True)
class GroundTruthConfig:
    label_words: str = ""  # a CSV (label,words) of extra words naming each label; "" = the label's own words


@dataclass(frozen=True)
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    probing_set: ProbingSetConfig = field(default_factory=ProbingSetConfig)
    models: tuple[ModelConfig, ...] = (ModelConfig(),)
    activations: ActivationsConfig = field(default_factory=ActivationsConfig)
    captions: CaptionsConfig = field(default_factory=CaptionsConfig)
    summaries: SummariesConfig = field(default_factory=SummariesConfig)
    module_a: ModuleAConfig = field(default_factory=ModuleAConfig)
    module_b: ModuleBConfig = field(default_factory=ModuleBConfig)
    module_c: ModuleCConfig = field(default_factory=ModuleCConfig)
    analyses: AnalysesConfig = field(default_factory=AnalysesConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    scores: ScoresConfig = field(default_factory=ScoresConfig)
    ground_truth: GroundTruthConfig = field(default_factory=GroundTruthConfig)
    sae: SaeConfig = field(default_factory=SaeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        return stable_hash(self.to_dict())

    def resolve(self, path: str) -> Path:
        """A config path -> absolute path (relative paths are relative to the project root)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else PROJECT_ROOT / p


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (dict keys sorted), hex, 16 characters."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _base(hint: Any) -> Any:
    """``Annotated[int, rule]`` -> ``int``; any other type unchanged."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def rules(cls: type, name: str) -> tuple[Rule, ...]:
    """The constraints declared on field ``name`` of config class ``cls``."""
    return tuple(m for m in getattr(_hints(cls)[name], "__metadata__", ()) if isinstance(m, Rule))


def _build(cls: type, data: Any, where: str) -> Any:
    """Recursively turn a TOML table into dataclass ``cls``; unknown keys raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) in [{where}]: {', '.join(unknown)}; known: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(cls, fields[name], value, f"{where}.{name}")
    return cls(**kwargs)


_NESTED = {
    "run": RunConfig, "probing_set": ProbingSetConfig, "activations": ActivationsConfig,
    "captions": CaptionsConfig, "summaries": SummariesConfig, "module_a": ModuleAConfig,
    "module_b": ModuleBConfig, "module_c": ModuleCConfig, "analyses": AnalysesConfig, "llm": LLMConfig,
    "device": DeviceConfig, "scores": ScoresConfig, "ground_truth": GroundTruthConfig, "sae": SaeConfig,
}


def _scalar(kind: Any, value: Any, where: str) -> Any:
    """A TOML value for a field of type ``kind`` (bool, int, float, str) -> the value; ConfigError names the key."""
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value}")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where} must be a whole number, got {value}")
        return kind(value)
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    return value


def _convert(owner: type, f: dataclasses.Field, value: Any, where: str) -> Any:
    if f.name == "models" and owner is Config:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where} must be a non-empty array of tables ([[models]])")
        return tuple(_build(ModelConfig, v, f"{where}[{i}]") for i, v in enumerate(value))
    if f.name == "overrides" and owner is SummariesConfig:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be an array of tables ([[summaries.overrides]])")
        return tuple(_build(SummaryOverride, v, f"{where}[{i}]") for i, v in enumerate(value))
    if f.name in _NESTED and f.type in (_NESTED[f.name], _NESTED[f.name].__name__):  # not e.g. activations.device
        return _build(_NESTED[f.name], value, where)
    kind = _base(_hints(owner)[f.name])
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be an array")
        item = typing.get_args(kind)[0]
        return tuple(_scalar(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if typing.get_origin(kind) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table")
        return value
    return _scalar(kind, value, where)


def _rule_problems(obj: Any, where: str) -> list[str]:
    """Every declared constraint ``obj`` (a config dataclass, recursively) breaks -> messages naming the key."""
    out = []
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{where}.{f.name}"
        if dataclasses.is_dataclass(value):
            out += _rule_problems(value, key)
        elif isinstance(value, tuple) and value and all(dataclasses.is_dataclass(v) for v in value):
            for i, item in enumerate(value):
                out += _rule_problems(item, f"{key}[{i}]")
        else:
            for rule in rules(type(obj), f.name):
                try:
                    ok = bool(rule.test(value))
                except TypeError:
                    ok = False
                if not ok:
                    out.append(f"{key} must be {rule.text}, got {value!r}")
    return out


def _cross_problems(config: Config) -> list[str]:
    """Constraints between keys: model names unique, a checkpoint for ast-checkpoint, overrides name configured
    models, pruning's top-N within Module A's, ratings apart from results."""
    out = []
    names = [m.name for m in config.models]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        out.append(f"config.models: model names must be unique; repeated: {', '.join(repeated)}")
    out += [f"config.models[{i}].checkpoint must name a local directory or model id for kind 'ast-checkpoint'"
            for i, m in enumerate(config.models) if m.kind == "ast-checkpoint" and not m.checkpoint.strip()]
    for i, o in enumerate(config.summaries.overrides):
        unknown = [n for n in o.models if n not in names]
        if unknown:
            out.append(f"config.summaries.overrides[{i}].models names no configured model: {', '.join(unknown)}; "
                       f"models: {', '.join(names)}")
    if config.analyses.closed_top_n_for_pruning > config.module_a.top_n:
        out.append(f"config.analyses.closed_top_n_for_pruning ({config.analyses.closed_top_n_for_pruning}) must be "
                   f"<= module_a.top_n ({config.module_a.top_n}): Module A stores only top_n concepts per neuron")
    if config.resolve(config.run.ratings_database) == config.resolve(config.run.database):
        out.append("config.run.ratings_database must differ from run.database (a rebuild never touches ratings)")
    return out


def check_config(config: Config) -> None:
    """Raise ConfigError listing every value that breaks a declared constraint (``Annotated`` rules of the
    fields, and the constraints between keys)."""
    problems = _rule_problems(config, "config") + _cross_problems(config)
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))


def config_from_dict(data: dict[str, Any], check: bool = True) -> Config:
    """A TOML-like dict -> Config; ``check`` also enforces the declared constraints (``check_config``); a
    stored config of an existing database is read with ``check=False``."""
    config = _build(Config, data, "config")
    if check:
        check_config(config)
    return config


def load_config(path: str | Path) -> Config:
    """Read a TOML file -> Config. Raises ConfigError with the offending key on bad input."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return config_from_dict(data)
