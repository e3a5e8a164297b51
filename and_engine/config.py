"""Configuration: a TOML file -> frozen dataclasses with documented defaults.

Every field is a **param** of SPEC.md and is stored with the results (``Config.to_dict`` goes into the
``runs`` table; each step stores the part of it that produced its rows). Paths in a config file are
resolved relative to the project root (the folder holding ``and_engine/``), or are absolute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the key."""


@dataclass(frozen=True)
class RunConfig:
    name: str = "demo"
    database: str = "data/build/demo.duckdb"  # results database (DuckDB)
    ratings_database: str = "data/build/ratings.duckdb"  # human evaluation, separate so rebuilds never touch it
    cache_dir: str = "data/cache"  # model checkpoints of trained variants, downloaded nothing
    seed: int = 0


@dataclass(frozen=True)
class ProbingSetConfig:
    kind: str = "demo"  # demo | esc50 | folder | csv
    path: str = "data/demo"  # root folder (demo / esc50 / folder) or the CSV file (csv)
    clip_seconds: float = 5.0  # every clip padded / trimmed to this length
    min_seconds: float = 0.25  # shorter files are reported and skipped
    silence_dbfs: float = -70.0  # a file whose peak is below this is reported as silent and skipped
    heldout_fold: int = 1  # the fold that trained variants never see and pruning evaluates on
    max_clips: int = 0  # 0 = all; >0 keeps a stratified subset (for quick tests)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "yamnet"
    kind: str = "yamnet"  # yamnet | yamnet-frozen | yamnet-finetuned | ast-scratch | ast-checkpoint
    checkpoint: str = ""  # ast-checkpoint: a local directory (or a model id in the local HF cache)
    layers: tuple[str, ...] = ()  # empty = every dissectable layer
    train_epochs: int = 0  # trained variants; 0 = the model kind's default
    train_lr: float = 0.0  # 0 = the model kind's default
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific extras (e.g. AST size)


@dataclass(frozen=True)
class ActivationsConfig:
    pool: str = "cls"  # token pooling for transformers: cls | mean | max
    batch_size: int = 16
    top_k: int = 5  # K of top-K / bottom-K
    keep_maps: bool = True  # keep per-position maps for each neuron's top-K clips
    device: str = "cpu"
    num_threads: int = 1  # torch CPU threads for forward passes and training (0 = torch's default)
    precision: str = "float32"  # float32 | bfloat16 (autocast forward passes: ~3x faster on AVX512-BF16 CPUs)
    compile: bool = False  # torch.compile the forward pass (pays off from a few thousand clips; docs/models.md)


@dataclass(frozen=True)
class CaptionsConfig:
    backend: str = "features"  # features | audio-llm
    model_path: str = ""  # audio-llm: local model directory
    prompt: str = "Please describe the audio in detail."
    batch_size: int = 8
    device: str = "cpu"
    max_new_tokens: int = 256
    tagger: str = "yamnet"  # features: AudioSet tagger for the sound-source labels (yamnet | none)
    tag_threshold: float = 0.3  # features: a tagger label is named when its score is >= this
    max_tags: int = 3  # features: at most this many labels per caption


@dataclass(frozen=True)
class LLMConfig:
    backend: str = "rule"  # rule | llama-cpp | transformers | vllm | openai
    model: str = ""  # model file / directory / served model name
    base_url: str = ""  # openai backend
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    seed: int = 0
    timeout_s: float = 120.0
    batch_size: int = 8


@dataclass(frozen=True)
class SummaryOverride:
    """A different LLM for a subset: matching model/layers and optionally a sample of neurons."""

    llm: LLMConfig = field(default_factory=LLMConfig)
    models: tuple[str, ...] = ()  # empty = all models
    layers: tuple[str, ...] = ()  # empty = all layers
    sample_neurons: int = 0  # 0 = every neuron; >0 = a seeded sample per layer


@dataclass(frozen=True)
class SummariesConfig:
    llm: LLMConfig = field(default_factory=LLMConfig)
    overrides: tuple[SummaryOverride, ...] = ()


@dataclass(frozen=True)
class ModuleAConfig:
    concept_set: str = "probing-labels"  # probing-labels | esc50 | file:<path to a word list>
    text_encoder: str = "minilm"  # minilm | clip:<local open_clip/transformers checkpoint>
    audio_text_model: str = "yamnet-labels"  # yamnet-labels | clap:<local checkpoint>
    similarities: tuple[str, ...] = ("cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi")
    db_scope: str = "all"  # all | topk
    icl: bool = True
    icl_summary: str = "top"  # ICL reads S_h ("top", SPEC section 6) or S_h^c ("calibrated", the paper's 3.3 / A.3)
    top_n: int = 5


@dataclass(frozen=True)
class ModuleBConfig:
    threshold: float = 0.7  # the paper's text; its code used 0.5
    sentence_encoder: str = "minilm"


@dataclass(frozen=True)
class ModuleCConfig:
    tagger: str = "auto"  # auto | nltk | textblob | spacy
    adjective_filter: bool = True


@dataclass(frozen=True)
class AnalysesConfig:
    n_clusters: int = 11
    elbow_max_k: int = 20
    taus: tuple[int, ...] = (3, 4, 5)
    prune_percents: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    closed_top_n_for_pruning: int = 3
    basic_adjectives: tuple[str, ...] = ("high-pitched", "high-quality", "clear", "loud")
    sentence_encoder: str = "minilm"  # caption-sentence clusters and the concept cosine of Table 2
    pruning_similarity: str = "best"  # DB/TAB selection: "best" = best last-layer top-1 per method, or a name
    prune_classifier: bool = False  # pruning / feature importance may also zero classifier units
    acoustic_adjectives: tuple[str, ...] = ("loud", "high-pitched")  # Appendix C checks
    top_adjectives_n: int = 20  # Figure 3 / 9 histogram length
    cluster_words_n: int = 40  # words kept per cluster for the word clouds
    workers: int = 0  # pruning / feature importance: threads evaluating clip chunks at once (0 = one per CPU core)


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
}


def _convert(owner: type, f: dataclasses.Field, value: Any, where: str) -> Any:
    if f.name == "models" and owner is Config:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where} must be a non-empty array of tables ([[models]])")
        return tuple(_build(ModelConfig, v, f"{where}[{i}]") for i, v in enumerate(value))
    if f.name == "overrides" and owner is SummariesConfig:
        return tuple(_build(SummaryOverride, v, f"{where}[{i}]") for i, v in enumerate(value))
    if f.name in _NESTED:
        return _build(_NESTED[f.name], value, where)
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be an array")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number")
        return type(default)(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    return value


def config_from_dict(data: dict[str, Any]) -> Config:
    return _build(Config, data, "config")


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
