"""Scoring: how well a model predicts a text (log-probability, bits per character).

Each text is read after the vocabulary's start id (a newline, where it has one;
see Vocabulary.inputs_and_targets), so every character is predicted and counted.
Characters the vocabulary lacks are dropped from the text before scoring and
counted in `unknown_chars`.

Many texts are scored side by side in one batch. A long document can be split
into parallel streams, each warmed up on the text before it; a test bounds the
difference from exact one-stream scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from ..model.network import CharRNN
from ..text.vocab import Vocabulary

LOGIT_BUDGET = 1 << 23  # floats of logits (R, T, V) held at once: 32 MiB
LINE_BATCH = 64  # texts scored side by side
DOC_STREAMS = 32  # parallel streams for a long document
DOC_OVERLAP = 1024  # warm-up characters each stream reads before it starts counting
PARALLEL_MIN_CHARS = 32 * 1024  # shorter documents are always scored exactly


@dataclass
class TextScore:
    chars: int  # characters scored (unknown ones excluded)
    nats: float  # total negative log-probability, natural log
    unknown_chars: int = 0

    @property
    def log_prob(self) -> float:
        return -self.nats

    @property
    def nats_per_char(self) -> float:
        return self.nats / self.chars if self.chars else float("nan")

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)

    @property
    def perplexity(self) -> float:
        if not self.chars:
            return float("nan")
        # e^709.78 is the largest float: beyond it, a model that all but rules the text out
        return math.exp(self.nats_per_char) if self.nats_per_char < 709.78 else math.inf

    def to_dict(self) -> dict:
        """JSON-ready; per-character figures are None for a text with no scored character."""
        per_char = self.chars > 0
        return {
            "chars": self.chars,
            "log_prob": self.log_prob,
            "nats_per_char": self.nats_per_char if per_char else None,
            "bits_per_char": self.bits_per_char if per_char else None,
            "perplexity": self.perplexity if per_char else None,
            "unknown_chars": self.unknown_chars,
        }


def total(scores: list[TextScore]) -> TextScore:
    return TextScore(
        sum(s.chars for s in scores),
        sum(s.nats for s in scores),
        sum(s.unknown_chars for s in scores),
    )


@torch.no_grad()
def score_rows(model: CharRNN, inputs: Tensor, targets: Tensor, counted: Tensor) -> Tensor:
    """Sum of -log p(target) over counted positions, per row.

    inputs, targets (R, L) int64; counted (R, L) bool. Each row starts from a
    zero state; the state is carried across time chunks. A softmax output layer is
    normalised in float64; an adaptive one gives log p(target) in float32 without
    computing all V, summed in float64.
    """
    model.eval()
    device = model.embedding.weight.device  # the CPU, or the GPU a training run validates on
    # MPS has no float64: there the float64 softmax below runs on the CPU.
    sum_device = torch.device("cpu") if device.type == "mps" else device
    inputs = inputs.to(device)
    targets, counted = targets.to(sum_device), counted.to(sum_device)
    state = None
    nats = torch.zeros(inputs.shape[0], dtype=torch.float64, device=sum_device)
    chunk = max(16, min(1024, LOGIT_BUDGET // (inputs.shape[0] * model.config.vocab_size)))
    adaptive = model.config.output == "adaptive"
    for t in range(0, inputs.shape[1], chunk):
        if adaptive:
            step_targets = targets[:, t : t + chunk].to(device)
            log_p, state = model(inputs[:, t : t + chunk], state, targets=step_targets)  # (R, T)
            nats -= (log_p.to(sum_device).double() * counted[:, t : t + chunk]).sum(dim=1)
            continue
        logits, state = model(inputs[:, t : t + chunk], state)  # (R, T, V)
        # float64 softmax: exact figures (a uniform model gives exactly log V) at little cost.
        losses = F.cross_entropy(
            logits.to(sum_device).double().transpose(1, 2),
            targets[:, t : t + chunk],
            reduction="none",
        )  # (R, T)
        nats += (losses * counted[:, t : t + chunk]).sum(dim=1)
    return nats.cpu()


def _rows(pieces: list[tuple[np.ndarray, np.ndarray, int]]):
    """Pad (inputs, targets, first counted index) pieces into a right-padded batch."""
    length = max(len(inp) for inp, _, _ in pieces)
    inputs = torch.zeros(len(pieces), length, dtype=torch.long)
    targets = torch.zeros(len(pieces), length, dtype=torch.long)
    counted = torch.zeros(len(pieces), length, dtype=torch.bool)
    for row, (inp, tgt, first) in enumerate(pieces):
        inputs[row, : len(inp)] = torch.from_numpy(np.asarray(inp, dtype=np.int64))
        targets[row, : len(tgt)] = torch.from_numpy(np.asarray(tgt, dtype=np.int64))
        counted[row, first : len(tgt)] = True
    return inputs, targets, counted


def score_ids(
    model: CharRNN,
    vocab: Vocabulary,
    ids: np.ndarray,
    exact: bool = False,
    streams: int = DOC_STREAMS,
    overlap: int = DOC_OVERLAP,
    part: tuple[int, int] = (0, 1),
) -> TextScore:
    """Score one document given as ids, the state carried from first to last character.

    Unless `exact`, a long document is cut into `streams` segments scored side
    by side; each segment after the first first reads `overlap` characters of
    the text before it without counting them, to warm up its state.
    `part=(k, n)` scores only segments k, k+n, k+2n, ... (process k of n in a
    distributed run); the n parts' sums add up to the whole document's score.
    """
    inputs, targets = vocab.inputs_and_targets(ids)
    n = len(targets)
    if n == 0:
        return TextScore(0, 0.0)
    if exact or n < PARALLEL_MIN_CHARS or streams <= 1:
        pieces = [(inputs, targets, 0)]
    else:
        seg = math.ceil(n / streams)
        pieces = []
        for begin in range(0, n, seg):
            warm = min(overlap, begin)
            end = min(begin + seg, n)
            pieces.append((inputs[begin - warm : end], targets[begin - warm : end], warm))
    index, parts = part
    pieces = pieces[index::parts]
    if not pieces:
        return TextScore(0, 0.0)
    nats = score_rows(model, *_rows(pieces))
    return TextScore(sum(len(tgt) - first for _, tgt, first in pieces), float(nats.sum()))


def score_text(model: CharRNN, vocab: Vocabulary, text: str, exact: bool = False) -> TextScore:
    """Score one text as a document (see score_ids); unknown characters are dropped."""
    ids, unknown = vocab.encode_known(text)
    result = score_ids(model, vocab, ids, exact=exact)
    result.unknown_chars = unknown
    return result


def score_texts(
    model: CharRNN, vocab: Vocabulary, texts: list[str], batch_size: int = LINE_BATCH
) -> list[TextScore]:
    """Score many independent texts, each from a fresh state, batched by length."""
    encoded = [vocab.encode_known(text) for text in texts]
    results = [TextScore(0, 0.0, unknown) for _, unknown in encoded]
    pairs = {i: vocab.inputs_and_targets(ids) for i, (ids, _) in enumerate(encoded)}
    # Texts with something to score, sorted by length so that each batch pads little.
    order = sorted((i for i in pairs if len(pairs[i][1])), key=lambda i: len(pairs[i][1]))
    for b in range(0, len(order), batch_size):
        batch = order[b : b + batch_size]
        nats = score_rows(model, *_rows([(*pairs[i], 0) for i in batch]))
        for i, value in zip(batch, nats.tolist()):
            results[i].chars = len(pairs[i][1])
            results[i].nats = value
    return results
