"""Beam search: the likeliest continuation of a prime that a width-K beam finds.

The beam holds at most K texts, each a continuation of the prime with its
log-probability (float64) and, while it is unfinished, one row of decoder
state. Each step expands every unfinished text by every character, and the K
most probable of those and of the finished texts are kept. A text is finished
when it produced `stop`; texts that reach `length` are complete too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CharRNNError
from ..model.modelfile import LoadedModel
from ..text.vocab import Vocabulary
from .decoder import Decoder
from .sample import read_prime

if TYPE_CHECKING:
    from ..model.network import CharRNN, State


@dataclass(frozen=True)
class BeamResult:
    text: str  # the continuation, the prime excluded
    log_prob: float  # natural log of P(text | prime) under the model


def log_softmax(values: np.ndarray) -> np.ndarray:
    """Rows (B, V) of logits, or of log-probabilities, -> log-probabilities in float64."""
    values = values.astype(np.float64)
    values -= values.max(axis=-1, keepdims=True)
    values -= np.log(np.exp(values).sum(axis=-1, keepdims=True))
    return values


def beam_search(
    model: CharRNN | LoadedModel,
    vocab: Vocabulary,
    prime: str,
    width: int,
    length: int,
    stop: str | None = None,
    start: State | None = None,
) -> BeamResult:
    """The most probable complete continuation of `prime` found by a width-`width`
    beam: complete means it ends right after its first `stop`, or has `length`
    characters. Width 1 is greedy decoding; a width of V**length is exhaustive.

    Ties go to the text kept first: finished texts before new ones, and among
    new ones the more probable parent, then the lower character id. Cost per
    step: one decoder step of at most `width` rows and a sort of width * V scores.
    `start`: the state the prime follows (as for sample.generate; default: the start
    of a text).
    """
    if width < 1:
        raise CharRNNError("beam width must be >= 1")
    if length < 0:
        raise CharRNNError("length must be >= 0")
    if stop == "":
        raise CharRNNError("stop must not be empty")
    if start is None and not prime and vocab.start_id is None:
        raise CharRNNError("beam search needs a prime: this model has no newline to start from")
    if isinstance(model, LoadedModel):
        decoder = Decoder(model.config, model.weights)
    else:
        model.eval()
        decoder = Decoder.from_model(model)
    logits, layers = read_prime(model, decoder, vocab, prime, 0, start=start)
    # The unfinished texts (one state row each) and the finished ones, in rank order.
    live_texts, live_scores = [""], np.zeros(1)
    done_texts: list[str] = []
    done_scores = np.zeros(0)
    for _ in range(length):
        expanded = (live_scores[:, None] + log_softmax(logits)).ravel()  # (B * V,)
        scores = np.concatenate([done_scores, expanded])
        kept = np.argsort(-scores, kind="stable")[:width]
        new_live, new_done, parents, ids = [], [], [], []  # (score, text) pairs; rows
        for index, score in zip(kept.tolist(), scores[kept].tolist()):
            if index < len(done_texts):
                new_done.append((score, done_texts[index]))
                continue
            parent, char_id = divmod(index - len(done_texts), len(vocab))
            text = live_texts[parent] + vocab.chars[char_id]
            if stop and text.endswith(stop):
                new_done.append((score, text))
            else:
                new_live.append((score, text))
                parents.append(parent)
                ids.append(char_id)
        done_scores = np.array([score for score, _ in new_done])
        done_texts = [text for _, text in new_done]
        live_scores = np.array([score for score, _ in new_live])
        live_texts = [text for _, text in new_live]
        # Scores only fall as texts grow: a finished text ahead of every live one wins.
        if not live_texts or (new_done and new_done[0][0] >= live_scores[0]):
            break
        layers = _rows(layers, parents)
        logits = decoder.step(np.array(ids), layers)
    candidates = [*zip(done_scores.tolist(), done_texts), *zip(live_scores.tolist(), live_texts)]
    score, text = max(candidates, key=lambda pair: pair[0])  # the first of equals
    return BeamResult(text, float(score))


def _rows(layers: list, parents: list[int]) -> list:
    """A per-layer state made of the rows `parents` of `layers` (copies, in that order)."""
    take = lambda part: part[parents]  # noqa: E731
    return [
        tuple(map(take, layer)) if isinstance(layer, tuple) else take(layer) for layer in layers
    ]
