"""What a run does differently on a text that is small for its model, and the advice
it gives there: start from a trained model (`--init-from`), naming the bundled one
when its alphabet covers the text."""

from __future__ import annotations

from ..bundled import bundled_model_named
from ..errors import CharRNNError

BUNDLED_MODEL = "shakespeare"  # the short name `--init-from` takes for the bundled model
# The bundled model is named when its alphabet holds at least this share of the
# training text's characters (counted with repeats): an English or other Latin-script
# text; not a Chinese or Greek one, whose characters it would all have to learn anew.
BUNDLED_COVERAGE = 0.9


def coverage(chars, counts, known) -> float:
    """The share of a text's characters (each of `chars` occurring `counts` times) that
    are in `known`."""
    total = sum(counts)
    covered = sum(n for c, n in zip(chars, counts) if c in known)
    return covered / total if total else 0.0


def start_from_model_advice(chars, counts) -> str:
    """The note for a small text trained from scratch: starting from a trained model
    usually gives a better one; the bundled model by name when its alphabet covers
    BUNDLED_COVERAGE of the text (`chars`, each occurring `counts` times)."""
    from ..model.modelfile import load_model

    advice = "--init-from MODEL, a model trained on a larger text of the same kind"
    path = bundled_model_named(BUNDLED_MODEL)
    try:
        known = set(load_model(path).vocab.chars) if path else set()
    except CharRNNError:
        known = set()  # a damaged bundled model: advise without it
    share = coverage(chars, counts, known)
    if share >= BUNDLED_COVERAGE:
        advice = (
            f"--init-from {BUNDLED_MODEL} (the bundled model, trained on Shakespeare, "
            f"knows {share:.1%} of this text's characters) or another model trained on "
            "a larger text of the same kind"
        )
    return (
        "the text is small for the model: a model started from a trained one usually "
        f"ends better than one trained from scratch; try {advice}"
    )
