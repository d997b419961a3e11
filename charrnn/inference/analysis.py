"""What the model sees in a text: per-character probabilities and surprisal, the
most likely alternatives, hidden / cell / gate activations per step, and the
units whose activations follow simple features of the text (quotes, brackets,
position in the line). Pure computation: no files, no printing.

Conventions are score.py's: the text is normalised as the vocabulary says,
characters the vocabulary lacks are dropped and counted, and the text is read
after the vocabulary's start id (Vocabulary.with_start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..config import AdaptConfig
from ..errors import CharRNNError
from ..model.layout import GATES
from ..model.network import CharRNN
from ..model.stepper import Stepper
from ..text.vocab import Vocabulary
from .adapt import Reader
from .score import TextScore

CHUNK = 4096  # characters run through the fused model at once (logits (1, CHUNK, V))

GATE_NAMES = {
    "i": "input gate",
    "f": "forget gate",
    "g": "candidate cell",
    "o": "output gate",
    "r": "reset gate",
    "z": "update gate",
    "n": "candidate",
}


@dataclass
class TextAnalysis:
    """The model's prediction for each character of `text`."""

    text: str  # the characters scored: normalised, unknown ones dropped
    probs: np.ndarray  # (N,) float64: probability given to each character (nan: not predicted)
    top_chars: list[list[str]]  # (N, K): the K most likely characters at each position
    top_probs: np.ndarray  # (N, K) float64, best first
    unknown_chars: int = 0

    @property
    def surprisal_bits(self) -> np.ndarray:
        """(N,) -log2 p of each character; nan where it was not predicted."""
        with np.errstate(divide="ignore"):
            return -np.log2(self.probs)

    def records(self, positions: list[int], top: int = 0) -> list[dict]:
        """JSON-ready per-character figures; with top > 0, the `top` best alternatives."""
        bits = self.surprisal_bits
        out = []
        for pos in positions:
            predicted = not np.isnan(self.probs[pos])
            record = {
                "pos": pos,
                "char": self.text[pos],
                "prob": float(self.probs[pos]) if predicted else None,
                "bits": float(bits[pos]) if predicted else None,
            }
            if top and predicted:
                best = zip(self.top_chars[pos][:top], self.top_probs[pos][:top].tolist())
                record["top"] = [[char, p] for char, p in best]
            out.append(record)
        return out

    def score(self) -> TextScore:
        """The same summary `charrnn score` gives for this text."""
        scored = self.probs[~np.isnan(self.probs)]
        with np.errstate(divide="ignore"):
            nats = float(-np.log(scored).sum())
        return TextScore(len(scored), nats, self.unknown_chars)


def known_text(vocab: Vocabulary, text: str) -> tuple[np.ndarray, str, int]:
    """(ids, the text they spell, unknown characters dropped)."""
    ids, unknown = vocab.encode_known(text)
    return ids, vocab.decode(ids.tolist()), unknown


def analyze_text(
    model: CharRNN,
    vocab: Vocabulary,
    text: str,
    top_k: int = 5,
    adapt: AdaptConfig | None = None,
) -> TextAnalysis:
    """Probability, surprisal and top-k alternatives for every character of `text`,
    read as one document (the state carried from first to last character); with
    `adapt`, read with dynamic evaluation (inference.adapt): each character as the
    model predicted it before learning from it."""
    if top_k < 1:
        raise CharRNNError("top-k must be at least 1")
    ids, shown, unknown = known_text(vocab, text)
    inputs, targets = vocab.inputs_and_targets(ids)
    k = min(top_k, len(vocab))
    probs = np.full(len(ids), np.nan)
    top_probs = np.zeros((len(ids), k))
    top_ids = np.zeros((len(ids), k), dtype=np.int64)
    offset = len(ids) - len(targets)  # 1 when the first character is context only
    targets_t = torch.from_numpy(targets)

    def keep(start: int, end: int, log_p: torch.Tensor) -> None:
        """log_p (T, V) float64: the distributions predicting targets[start:end]."""
        chosen = log_p.gather(1, targets_t[start:end, None])[:, 0]  # (T,)
        best = log_p.topk(k, dim=-1)  # (T, k)
        rows = slice(offset + start, offset + end)
        probs[rows] = chosen.exp().numpy()
        top_probs[rows] = best.values.exp().numpy()
        top_ids[rows] = best.indices.numpy()

    if adapt is not None:
        Reader(model, adapt).read_ids(inputs, targets, on_segment=keep, full=True)
    else:
        _read_static(model, inputs, keep)
    top_chars = [[vocab.chars[i] for i in row] for row in top_ids.tolist()]
    return TextAnalysis(shown, probs, top_chars, top_probs, unknown)


@torch.no_grad()
def _read_static(model: CharRNN, inputs: np.ndarray, keep) -> None:
    """`keep(start, end, log_p)` for each chunk of inputs, as the trained model reads them."""
    model.eval()
    state = None
    inputs_t = torch.from_numpy(inputs)
    for t in range(0, len(inputs), CHUNK):
        logits, state = model(inputs_t[None, t : t + CHUNK], state)  # (1, T, V)
        # float64 softmax, as score.py: the figures agree with `charrnn score` exactly
        # (an adaptive head's logits are already log-probabilities; this renormalises
        # them in float64).
        keep(t, t + logits.shape[1], F.log_softmax(logits[0].double(), dim=-1))  # (T, V)


# --------------------------------------------------------------------------- activations
@dataclass
class Activations:
    """Activations of one layer, recorded after reading each character of `text`."""

    text: str  # normalised, unknown characters dropped
    cell: str
    layer: int
    values: dict[str, np.ndarray]  # "h", "c" (LSTM), gate letters -> (N, H) float32
    unknown_chars: int = 0

    @property
    def hidden(self) -> int:
        return self.values["h"].shape[1]


def recorded_names(cell: str) -> tuple[str, ...]:
    """What `record_activations` records for a cell: h (and c for LSTM), then its gates."""
    return (("h", "c") if cell == "lstm" else ("h",)) + GATES[cell]


def parse_states(spec: str | tuple[str, ...] | list[str], cell: str) -> tuple[str, ...]:
    """What to record for `cell`, from "h,c", "gates" (all of the cell's gates) or
    single gate letters (a string, comma-separated, or a sequence of names)."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for part in (p.strip() for p in parts if p.strip()):
        if part == "gates":
            if not GATES[cell]:
                raise CharRNNError("a vanilla RNN has no gates")
            names += GATES[cell]
        elif part in recorded_names(cell):
            names.append(part)
        else:
            choices = ", ".join(recorded_names(cell) + (("gates",) if GATES[cell] else ()))
            raise CharRNNError(
                f"{part!r} is not recorded for a {cell} model; choose from {choices}"
            )
    if not names:
        raise CharRNNError("name at least one state")
    return tuple(dict.fromkeys(names))


def value_range(name: str) -> tuple[float, float]:
    """The range an activation lies in: sigmoid gates in [0, 1]; h, tanh-ed c, g, n in [-1, 1]."""
    return (0.0, 1.0) if name in ("i", "f", "o", "r", "z") else (-1.0, 1.0)


def record_activations(
    model: CharRNN,
    vocab: Vocabulary,
    text: str,
    layer: int = -1,
    adapt: AdaptConfig | None = None,
) -> Activations:
    """Step through `text` with the textbook cell equations, recording layer `layer`'s
    h (and c for LSTM) after each character and the gates computed while reading it.
    With `adapt`, the weights change as in dynamic evaluation: each segment is read
    with the weights that predicted it."""
    config = model.config
    if not -config.layers <= layer < config.layers:
        raise CharRNNError(f"layer {layer} does not exist: the model has {config.layers}")
    layer %= config.layers
    ids, shown, unknown = known_text(vocab, text)
    names = recorded_names(config.cell)
    values = {name: np.zeros((len(ids), config.hidden), dtype=np.float32) for name in names}
    sequence = vocab.with_start(ids)
    first = len(sequence) - len(ids)  # the start id is read but not recorded
    layers = Stepper(model).zero_state()

    @torch.no_grad()
    def step_through(stepper: Stepper, start: int, end: int) -> None:
        for t in range(start, end):
            _, gates = stepper.step(torch.from_numpy(sequence[t : t + 1]), layers)
            if t >= first:
                state = layers[layer]  # h, or (h, c) for LSTM; each (1, H)
                states = dict(zip(("h", "c"), state)) if config.cell == "lstm" else {"h": state}
                for name, value in {**states, **gates[layer]}.items():
                    values[name][t - first] = value[0].numpy()

    if adapt is None:
        step_through(Stepper(model), 0, len(sequence))
    else:
        reader = Reader(model, adapt)
        inputs, targets = vocab.inputs_and_targets(ids)  # inputs: sequence[:-1]
        reader.read_ids(
            inputs,
            targets,
            on_segment=lambda start, end, _: step_through(Stepper(reader.model), start, end),
        )
        # the last character predicts nothing: it is read with the final weights
        step_through(Stepper(reader.model), len(inputs), len(sequence))
    return Activations(shown, config.cell, layer, values, unknown)


def select_units(activations: Activations, units: list[int]) -> list[int]:
    """Check unit indices against the layer's size."""
    bad = [u for u in units if not 0 <= u < activations.hidden]
    if bad:
        raise CharRNNError(
            f"unit {bad[0]} does not exist: the layer has units 0..{activations.hidden - 1}"
        )
    return units


# --------------------------------------------------------------------------- features
def inside_quotes(text: str) -> np.ndarray:
    """1.0 after reading an opening double quote, up to (not including) its closing one."""
    return (np.cumsum([c == '"' for c in text]) % 2).astype(np.float64)


def bracket_depth(text: str) -> np.ndarray:
    """Nesting depth of (), [] and {} after reading each character (never below 0)."""
    depth, out = 0, np.zeros(len(text))
    for t, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        out[t] = depth
    return out


def line_position(text: str) -> np.ndarray:
    """Characters since the last newline, after reading each character (0 on a newline)."""
    column, out = 0, np.zeros(len(text))
    for t, char in enumerate(text):
        column = 0 if char == "\n" else column + 1
        out[t] = column
    return out


FEATURES = {
    "quotes": inside_quotes,
    "brackets": bracket_depth,
    "line-position": line_position,
}


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of values (N, H) with feature (N,); 0 where
    a unit never changes."""
    x = values.astype(np.float64) - values.mean(axis=0)  # (N, H)
    y = feature - feature.mean()  # (N,)
    denominator = np.sqrt((x * x).sum(axis=0) * (y * y).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y[:, None]).sum(axis=0) / denominator
    # A unit that never changes has no correlation (rounding would make it ~1e-17).
    return np.where(np.ptp(values, axis=0) > 0, np.nan_to_num(r, nan=0.0), 0.0)


@dataclass(frozen=True)
class UnitMatch:
    state: str  # "h", "c" or a gate letter
    unit: int
    r: float  # Pearson correlation with the feature


def find_units(
    activations: Activations, feature: str, states: tuple[str, ...], count: int = 10
) -> list[UnitMatch]:
    """The `count` units (of the given states) most correlated with `feature`, by |r|."""
    if feature not in FEATURES:
        raise CharRNNError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}")
    target = FEATURES[feature](activations.text)
    if len(target) < 2 or np.all(target == target[0]):
        hint = {"quotes": 'double quotes (")', "brackets": "brackets", "line-position": "lines"}
        raise CharRNNError(
            f"the feature {feature!r} never changes in this text; give a text with "
            f"{hint[feature]} in it"
        )
    matches = []
    for state in states:
        for unit, r in enumerate(correlations(activations.values[state], target).tolist()):
            matches.append(UnitMatch(state, unit, r))
    matches.sort(key=lambda m: (-abs(m.r), m.state, m.unit))
    return matches[:count]


def display_value(name: str, values: np.ndarray) -> np.ndarray:
    """Values squashed into value_range(name): the cell state c through tanh, as
    h sees it (h = o * tanh(c)); everything else as it is."""
    return np.tanh(values) if name == "c" else values


# --------------------------------------------------------------------------- what to show
SHOWN_UNITS = 3  # units drawn when they are found rather than named
# A feature counts as found when some unit follows it at least this closely (|r|); below,
# the most active units say more about the text than a weak correlation does.
FOUND_R = 0.5


@dataclass
class UnitView:
    """The units of one layer to show for a text, and why those."""

    activations: Activations
    shown: list[tuple[str, int]]  # (state, unit) pairs to draw, in order
    matches: list[UnitMatch]  # the units most correlated with `feature` ([] without one)
    feature: str | None  # the feature of `matches`
    chosen_by: str  # "units" (named), "find" (a feature named), "feature" (the strongest
    # feature found in the text) or "activity" (the units that vary most)


def choose_units(
    activations: Activations,
    states: tuple[str, ...] = ("h",),
    units: list[int] | None = None,
    feature: str | None = None,
    count: int = 10,
) -> UnitView:
    """Named `units` (each with every state), else the best matches of a named `feature`,
    else those of the feature (FEATURES) that some unit follows most closely in this
    text (|r| >= FOUND_R), else the units whose (displayed) activation varies most."""
    if not activations.text:
        raise CharRNNError("the text has no character the model knows")
    chosen = select_units(activations, list(units or []))
    matches = find_units(activations, feature, states, count) if feature else []
    if chosen:
        shown = [(name, unit) for unit in chosen for name in states]
        return UnitView(activations, shown, matches, feature, "units")
    if feature:
        shown = [(m.state, m.unit) for m in matches[:SHOWN_UNITS]]
        return UnitView(activations, shown, matches, feature, "find")
    found = [
        (name, find_units(activations, name, states, count))
        for name, make in FEATURES.items()
        if np.ptp(make(activations.text)) > 0
    ]
    if found:
        name, best = max(found, key=lambda pair: abs(pair[1][0].r))
        if abs(best[0].r) >= FOUND_R:
            shown = [(m.state, m.unit) for m in best[:SHOWN_UNITS]]
            return UnitView(activations, shown, best, name, "feature")
    spread = [
        (float(np.std(display_value(name, activations.values[name][:, unit]))), name, unit)
        for name in states
        for unit in range(activations.hidden)
    ]
    spread.sort(key=lambda row: (-row[0], row[1], row[2]))
    shown = [(name, unit) for _, name, unit in spread[:SHOWN_UNITS]]
    return UnitView(activations, shown, [], None, "activity")
