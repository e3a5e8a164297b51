"""What a results database cannot show, and why, in words for the pages (no streamlit here).

A user's own folder is often unlabelled (every clip in one sub-folder) and dissected with pretrained models only.
Then ground truth (explanations checked against the clips' labels) and everything measured on labelled held-out
clips (pruning, the effect on the output, last-layer accuracy) has nothing to stand on. These functions say so,
with what the user can do; each returns None when the view is available.

* ``probing_labels(store)`` -> the probing set's labels (sorted).
* ``no_labels(store)`` -> why nothing can be checked against labels (fewer than two labels), else None.
* ``no_output_measure(store)`` -> why no model can be measured on labelled held-out clips, else None.
* ``no_closed_concepts(store, concept_set)`` -> why the closed-set concepts say nothing (one probing label as the
  concept set), else None.
"""

from __future__ import annotations

import pandas as pd

from and_engine.explorer.aggregates import prunable_models
from and_engine.probing import classes_are_labels
from and_engine.store.results import ResultsStore

TRAINED = "a trained variant (kind yamnet-frozen, yamnet-finetuned or ast-scratch)"


def probing_labels(store: ResultsStore) -> list[str]:
    """-> the distinct labels of the probing clips, sorted."""
    return store.query_df('SELECT DISTINCT label FROM "clips" ORDER BY label')["label"].tolist()


def _one_label(labels: list[str]) -> str | None:
    """-> "the probing set has one label (...)" when it has fewer than two, else None."""
    if len(labels) > 1:
        return None
    which = f"one label ({labels[0]!r}: e.g. every clip in one sub-folder)" if labels else "no label"
    return f"the probing set has {which}"


def no_labels(store: ResultsStore) -> str | None:
    """-> why the clips' labels say nothing (one label, e.g. a folder with a single sub-folder), else None."""
    one = _one_label(probing_labels(store))
    return one and (f"{one}, so there is nothing to check an explanation against. Sort the clips into one "
                    "sub-folder per sound source (or list path,label in a CSV) and rebuild")


def no_output_measure(store: ResultsStore) -> str | None:
    """-> why no model of the database can be measured on labelled held-out clips (pruning, the effect of a neuron
    on the output, last-layer accuracy), else None. Those need a model whose classes are the probing labels."""
    if prunable_models(store):
        return None
    return output_reason(probing_labels(store), store.read("models", ["model", "class_names"], order_by=["model"]))


def output_reason(labels: list[str], models: pd.DataFrame) -> str:
    """(the probing labels, models rows: model, class_names; none of them measurable) -> why, and what to do."""
    own = [r.model for r in models.itertuples() if classes_are_labels(list(r.class_names), labels)]
    if own:  # a model of the probing labels, but no held-out clip of its classes
        return (f"no held-out clip is labelled with a class of {', '.join(own)}: set probing_set.heldout_fold to a "
                "fold with clips of every label and rebuild")
    classes = "; ".join(f"{r.model}: its own {len(r.class_names)} classes" for r in models.itertuples())
    why = (f"no model here has the probing labels as its classes ({classes}), so there is no held-out label to "
           "measure its output against")
    if one := _one_label(labels):
        return (f"{why}. And {one}: sort the clips into one sub-folder per sound source, add {TRAINED} to the "
                "build and rebuild; it learns those labels on the other folds and is measured on the held-out fold")
    return f"{why}. Add {TRAINED} to the build: it learns the probing labels on the other folds"


def no_closed_concepts(store: ResultsStore, concept_set: str) -> str | None:
    """-> why the closed-set concepts (Module A: DB, TAB, ICL) say nothing: they are the probing labels
    (``concept_set = "probing-labels"``) and there is one, so every neuron gets it; else None."""
    one = _one_label(probing_labels(store)) if concept_set == "probing-labels" else None
    return one and (f"the closed-set concepts are the probing labels (module_a.concept_set = \"probing-labels\") and "
                    f"{one}, so every neuron gets that one concept. Set module_a.concept_set = \"esc50\" (the 50 "
                    "ESC-50 classes) or \"file:<a word list>\" and rebuild")
