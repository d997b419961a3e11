"""How far back the gradient reaches: the norm of d loss_t / d h_{t-k} (and of
d loss_t / d c_{t-k} for the LSTM) for k = 1..K, averaged over the positions t of
a text. Back-propagation through time, measured on a trained model. Pure
computation: no files written, no printing.

The loss at t is -log p(the character after t), predicted from the state after
reading t; h_{t-k} is one layer's hidden state after reading the character k
steps earlier. The gradient counts every path from h_{t-k} to that loss:
through the layer's later steps and, below the last layer, up through the
layers above (what changing h_{t-k} alone would do to the loss); for the LSTM's
c_{t-k}, also the one through h_{t-k} = o * tanh(c_{t-k}) of its own step: the
gradient autograd gives for these tensors in the unrolled graph. Text is read
as analysis.py reads it (normalised, unknown characters dropped, after the
vocabulary's start id).

How: one pass records every layer's state after each character (the textbook
cells, model/stepper.py). Then the gradient vectors of all positions t travel
back together, one step further at each distance k. At distance k the rows are
the states s = t - k for every t, a contiguous slice of the recorded states;
each layer's cell is run again on those rows and differentiated
(torch.autograd.grad, a vector-Jacobian product), from the top layer down. So
K batched steps replace a backward pass per position.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..bundled import bundled_corpus, corpus_path, data_dir
from ..config import GRADIENT_DISTANCE
from ..errors import CharRNNError, CorpusError
from ..model.modelfile import LoadedModel
from ..model.network import CharRNN, state_parts
from ..model.stepper import Stepper, output_of
from ..text.vocab import Vocabulary
from .analysis import known_text
from .copycheck import corpus_chunks

# What `inspect --gradients` reads of the model's training text when given no text:
# with config.GRADIENT_DISTANCE, what sets the cost.
GRADIENT_PASSAGE_CHARS = 400
DECAY_RATIO = 1e-3  # "vanished": the mean norm below this share of its value at k = 1


@dataclass
class GradientDecay:
    """Mean gradient norms of the loss at t with respect to one layer's state at t - k."""

    text: str  # the characters read: normalised, unknown ones dropped
    cell: str
    layer: int
    norms: dict[str, np.ndarray]  # "h" (and "c" for LSTM) -> (K,) float64, k = 1..K
    positions: np.ndarray  # (K,) int: how many positions t were averaged at each k
    unknown_chars: int = 0

    @property
    def distance(self) -> int:
        """K: the farthest distance measured."""
        return len(self.positions)

    def falls_below(self, state: str = "h", ratio: float = DECAY_RATIO) -> int | None:
        """The first distance k at which the mean norm is below `ratio` times its value
        at k = 1; None when it stays above within the distances measured."""
        values = self.norms[state]
        below = np.flatnonzero(values < ratio * values[0])
        return int(below[0]) + 1 if len(below) else None

    def factor_per_step(self, state: str = "h") -> float | None:
        """How much the mean norm is multiplied by per step back, on average: exp of the
        least-squares slope of ln(norm) over k (below 1: vanishing, above 1:
        exploding). None with fewer than two positive finite norms."""
        values = self.norms[state]
        k = np.arange(1, len(values) + 1)
        kept = np.isfinite(values) & (values > 0)
        if kept.sum() < 2:
            return None
        slope = np.polyfit(k[kept], np.log(values[kept]), 1)[0]
        return float(math.exp(slope))

    def to_dict(self) -> dict:
        """JSON-ready: the norms by distance (k = 1..K) per state, and their decay."""
        out = {
            "cell": self.cell,
            "layer": self.layer,
            "chars": len(self.text),
            "unknown_chars": self.unknown_chars,
            "distances": list(range(1, self.distance + 1)),
            "positions": self.positions.tolist(),
        }
        for state, values in self.norms.items():
            out[state] = [float(v) for v in values]
        out["decay"] = {
            state: {
                f"below_{DECAY_RATIO:g}_at": self.falls_below(state),
                "factor_per_step": self.factor_per_step(state),
            }
            for state in self.norms
        }
        return out


def farthest_distance(vocab: Vocabulary, text: str) -> int:
    """The largest distance a text allows: from the last predicted position back to the
    state after its first character read (0 when there is none)."""
    ids, _, _ = known_text(vocab, text)
    return max(len(vocab.with_start(ids)) - 2, 0)


def gradient_decay(
    model: CharRNN,
    vocab: Vocabulary,
    text: str,
    distance: int | None = None,
    layer: int = -1,
) -> GradientDecay:
    """Mean norms of d loss_t / d h_{t-k} (and c_{t-k}, LSTM) of layer `layer` over the
    positions t of `text`, for k = 1..distance (default: GRADIENT_DISTANCE, or as far
    as the text allows)."""
    config = model.config
    if not -config.layers <= layer < config.layers:
        raise CharRNNError(f"layer {layer} does not exist: the model has {config.layers}")
    layer %= config.layers
    ids, shown, unknown = known_text(vocab, text)
    sequence = torch.from_numpy(vocab.with_start(ids))  # (M,)
    farthest = len(sequence) - 2
    if farthest < 1:
        raise CharRNNError(
            "the text is too short to follow a gradient back: give at least 2 characters "
            "the model knows"
        )
    if distance is None:
        distance = min(GRADIENT_DISTANCE, farthest)
    if not 1 <= distance <= farthest:
        raise CharRNNError(
            f"distance {distance} is out of reach: this text of {len(ids):,} known "
            f"character(s) allows 1..{farthest}"
        )
    stepper = Stepper(model)
    with torch.enable_grad(), _one_thread():
        norms = _mean_norms(stepper, sequence, distance, layer)
    positions = np.arange(len(sequence) - 2, len(sequence) - 2 - distance, -1)
    return GradientDecay(shown, config.cell, layer, norms, positions, unknown)


@contextmanager
def _one_thread():
    """Torch on one thread meanwhile. On the project's shared 2-core machine, with other
    jobs running, the bundled model's k = 1..100 took 1.2 s on one thread and from 1.4 s
    to 29 s on two (threads waiting on each other while the cores are busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _record_states(stepper: Stepper, sequence: Tensor) -> list[list[Tensor]]:
    """Per layer, its state parts (h, and c for LSTM), each (M + 1, H): row 0 the zero
    state, row s + 1 the state after reading sequence[s]."""
    lstm = stepper.cell == "lstm"
    rows = len(sequence) + 1
    recorded = [
        [torch.zeros(rows, stepper.hidden) for _ in range(2 if lstm else 1)]
        for _ in range(stepper.layers)
    ]
    layers = stepper.zero_state()
    with torch.no_grad():
        for s in range(len(sequence)):
            x = sequence[s : s + 1]  # (1,) ids, then each layer's h (1, H)
            for k in range(stepper.layers):
                layers[k], _ = stepper.layer_step(k, x, layers[k])
                x = output_of(layers[k])
                for part, value in zip(recorded[k], state_parts(layers[k])):
                    part[s + 1] = value[0]
    return recorded


def _mean_norms(
    stepper: Stepper, sequence: Tensor, distance: int, layer: int
) -> dict[str, np.ndarray]:
    """The batched backward pass described in the module docstring."""
    lstm, top = stepper.cell == "lstm", stepper.layers - 1
    recorded = _record_states(stepper, sequence)
    names = ("h", "c") if lstm else ("h",)
    found = {name: np.zeros(distance) for name in names}
    count = len(sequence) - 1  # positions t that predict a character: 0..M-2

    # Each layer's step at every position s = 0..M-2 at once, from the recorded state
    # at s - 1 (and the layer below's h_s): one graph, differentiated at every distance.
    steps = []
    for i in range(stepper.layers):
        before = [part[:count].detach().requires_grad_() for part in recorded[i]]  # (count, H)
        if i == 0:
            x = sequence[:count]  # (count,) ids
        else:
            x = recorded[i - 1][0][1 : count + 1].detach().requires_grad_()  # (count, H)
        state, gates = stepper.layer_step(i, x, tuple(before) if lstm else before[0])
        steps.append((state_parts(state), before + ([x] if i > 0 else []), gates))

    # Distance 0: the loss at each t with respect to the top layer's h_t.
    h_top = recorded[top][0][1 : count + 1].detach().requires_grad_()  # (count, H)
    log_p = stepper.head.target_log_probs(h_top, sequence[1:])  # (count,)
    (seed,) = torch.autograd.grad(-log_p.sum(), h_top)
    # reached[l]: the gradient at layer l's state s = t - k arriving from steps after s
    # (and from the output layer at k = 0); row r is s = r, for the position t = r + k,
    # and rows from count - k on (no such t) are zero.
    reached = [[torch.zeros_like(seed) for _ in names] for _ in range(stepper.layers)]
    reached[top][0] = seed
    for k in range(distance + 1):
        rows = count - k
        # whole[l]: the gradient at layer l's state s, adding the paths up through the
        # layers above at the same step; found from the top layer down.
        whole = [list(parts) for parts in reached]
        for i in range(top, -1, -1):
            outputs, inputs, gates = steps[i]
            grads = torch.autograd.grad(outputs, inputs, whole[i], retain_graph=True)
            # The gradient at the state s - 1 is the one at distance k + 1, row s - 1.
            reached[i] = [_shift_up(g) for g in grads[: len(outputs)]]
            if i > 0:
                whole[i - 1][0] = whole[i - 1][0] + grads[-1]
            if i == layer and k >= 1:
                totals = [part[:rows] for part in whole[i]]
                if lstm:
                    # c_s also reaches the loss through h_s = o * tanh(c_s) of its own
                    # step (a path inside this step's graph, so not in whole[i]).
                    c, o = outputs[1][:rows].detach(), gates["o"][:rows].detach()
                    totals[1] = totals[1] + totals[0] * o * (1 - torch.tanh(c) ** 2)
                for name, part in zip(names, totals):
                    norm = torch.linalg.vector_norm(part, dim=1)  # (rows,)
                    found[name][k - 1] = norm.double().mean().item()
    return found


def _shift_up(rows: Tensor) -> Tensor:
    """Row r + 1 to row r, a zero last row."""
    return torch.cat([rows[1:], torch.zeros_like(rows[:1])])


def model_passage(loaded: LoadedModel, chars: int = GRADIENT_PASSAGE_CHARS) -> tuple[str, str]:
    """A passage of the text a model was trained on, and where it comes from: the first
    `chars` characters of the corpus its file records (for the bundled model, the
    bundled corpus wherever the recorded one is not)."""
    recorded = loaded.info.get("corpus")
    path = Path(corpus_path(recorded)) if recorded else None
    if path is None or not path.exists():
        bundled = _bundled_corpus_of(loaded)
        if bundled is None:
            if recorded:
                why = f"was trained on {recorded}, which is not there"
            else:
                why = "does not record its training text"
            raise CorpusError(f"{loaded.path} {why}; give a TEXT or --file FILE")
        path = bundled
    taken = ""
    for piece in corpus_chunks(path, loaded.vocab.normalization):
        taken += piece
        if len(taken) >= chars:
            break
    return taken[:chars], f"the first {len(taken[:chars]):,} characters of {path}"


def _bundled_corpus_of(loaded: LoadedModel) -> Path | None:
    try:
        if loaded.path.resolve().parent == data_dir().resolve():
            return bundled_corpus()
    except CharRNNError:
        pass
    return None
