"""Every name a configuration uses, checked before a build runs anything.

``validate(config) -> config`` raises ``ConfigError`` listing every problem at once: the declared value
constraints (``config.check_config``), then the names — model kinds and options, the backend of every kind
(``backends.registry.check``: LLMs of the summaries and their overrides, captioner, audio tagger, text and
sentence encoders, audio-text model, POS tagger), similarity functions, the concept set, the activation
precision, the scorers and the ground truth's label-words file. A typo then stops the build before a model is
retrained or a table replaced.
"""

from __future__ import annotations

from and_engine.backends.registry import BackendError, check
from and_engine.config import MODEL_OPTIONS, Config, ConfigError, check_config
from and_engine.store.schema import EMBEDDING_SCORERS, ICL_SIMILARITY, LLM_SCORERS, SIMILARITIES

CONCEPT_SETS = ("probing-labels", "esc50", "file:<word list>")


def _backends(config: Config) -> list[tuple[str, str, object | None]]:
    """(kind, name, options) of every backend the configuration names."""
    out = [("llm", config.summaries.llm.backend, config.summaries.llm)]
    out += [("llm", o.llm.backend, o.llm) for o in config.summaries.overrides]
    out += [("captioner", config.captions.backend, config.captions), ("audio_tagger", config.captions.tagger, None),
            ("text_encoder", config.module_a.text_encoder, None),
            ("audio_text", config.module_a.audio_text_model, None),
            ("text_encoder", config.module_b.sentence_encoder, None),
            ("text_encoder", config.analyses.sentence_encoder, None), ("pos_tagger", config.module_c.tagger, None)]
    if config.scores.scorers:
        out += [("text_encoder", config.scores.text_encoder, None),
                ("audio_text", config.scores.audio_text_model, None)]
    return out


def _concept_set_problem(config: Config) -> str | None:
    spec = config.module_a.concept_set
    if spec in CONCEPT_SETS[:2]:
        return None
    if not spec.startswith("file:") or not spec[5:].strip():
        return f"module_a.concept_set: unknown concept set {spec!r}; known: {', '.join(CONCEPT_SETS)}"
    path = config.resolve(spec[5:])
    return None if path.is_file() else f"module_a.concept_set: word list not found: {path}"


def _scores_problems(config: Config) -> list[str]:
    """Unknown scorer names (``store.schema``) and a missing label-words file."""
    out = []
    for key, names, known in (("scores.scorers", config.scores.scorers, EMBEDDING_SCORERS),
                              ("scores.llm_scorers", config.scores.llm_scorers, LLM_SCORERS)):
        bad = [n for n in names if n not in known]
        if bad:
            out.append(f"{key}: unknown scorer(s) {bad}; known: {', '.join(known)}")
    path = config.ground_truth.label_words
    if path.strip() and not config.resolve(path).is_file():
        out.append(f"ground_truth.label_words: file not found: {config.resolve(path)}")
    return out


def name_problems(config: Config) -> list[str]:
    """Every unknown name in ``config`` -> messages naming the key and the known names."""
    from and_engine.stages.activations import PRECISIONS  # torch: imported when a build is about to run anyway

    out = []
    for kind, name, options in _backends(config):
        try:
            check(kind, name, options)
        except BackendError as exc:
            out.append(str(exc))
    for i, m in enumerate(config.models):
        extra = sorted(set(m.options) - set(MODEL_OPTIONS))
        if extra and m.kind == "ast-scratch":  # its other options are transformers' ASTConfig fields
            from transformers import ASTConfig

            extra = sorted(set(extra) - set(ASTConfig().to_dict()))
        if extra:
            out.append(f"models[{i}].options: unknown option(s) {extra} for kind {m.kind!r}; "
                       f"known: {list(MODEL_OPTIONS)}{' and ASTConfig fields' if m.kind == 'ast-scratch' else ''}")
    bad = [s for s in config.module_a.similarities if s not in SIMILARITIES]
    if bad:
        out.append(f"module_a.similarities: unknown similarity function(s) {bad}; known: {', '.join(SIMILARITIES)}")
    known = ("best", *SIMILARITIES, ICL_SIMILARITY)
    if config.analyses.pruning_similarity not in known:
        out.append(f"analyses.pruning_similarity: unknown {config.analyses.pruning_similarity!r}; "
                   f"known: {', '.join(known)}")
    if config.activations.precision not in PRECISIONS:
        out.append(f"activations.precision: unknown {config.activations.precision!r}; known: {', '.join(PRECISIONS)}")
    problem = _concept_set_problem(config)
    return out + ([problem] if problem else []) + _scores_problems(config)


def validate(config: Config) -> Config:
    """``config`` if every value and name in it is valid; else ConfigError listing every problem."""
    check_config(config)
    problems = name_problems(config)
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return config
