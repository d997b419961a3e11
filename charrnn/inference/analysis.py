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

from ..errors import CharRNNError
from ..model.cells import gru_step, lstm_step, rnn_step
from ..model.network import CharRNN
from ..text.vocab import Vocabulary
from .sample import StepDecoder
from .score import TextScore

CHUNK = 4096  # characters run through the fused model at once (logits (1, CHUNK, V))

# Per cell: the gates recorded besides h (and c), in torch's order, with their value range.
GATES = {
    "rnn": (),
    "lstm": ("i", "f", "g", "o"),
    "gru": ("r", "z", "n"),
}
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


@torch.no_grad()
def analyze_text(model: CharRNN, vocab: Vocabulary, text: str, top_k: int = 5) -> TextAnalysis:
    """Probability, surprisal and top-k alternatives for every character of `text`,
    read as one document (the state carried from first to last character)."""
    if top_k < 1:
        raise CharRNNError("top-k must be at least 1")
    ids, shown, unknown = known_text(vocab, text)
    inputs, targets = vocab.inputs_and_targets(ids)
    k = min(top_k, len(vocab))
    probs = np.full(len(ids), np.nan)
    top_probs = np.zeros((len(ids), k))
    top_ids = np.zeros((len(ids), k), dtype=np.int64)
    offset = len(ids) - len(targets)  # 1 when the first character is context only
    model.eval()
    state = None
    inputs_t = torch.from_numpy(inputs)
    targets_t = torch.from_numpy(targets)
    for t in range(0, len(targets), CHUNK):
        logits, state = model(inputs_t[None, t : t + CHUNK], state)  # (1, T, V)
        # float64 softmax, as score.py: the figures agree with `charrnn score` exactly.
        log_p = F.log_softmax(logits[0].double(), dim=-1)  # (T, V)
        chosen = log_p.gather(1, targets_t[t : t + CHUNK, None])[:, 0]  # (T,)
        best = log_p.topk(k, dim=-1)  # (T, k)
        rows = slice(offset + t, offset + t + len(chosen))
        probs[rows] = chosen.exp().numpy()
        top_probs[rows] = best.values.exp().numpy()
        top_ids[rows] = best.indices.numpy()
    top_chars = [[vocab.chars[i] for i in row] for row in top_ids.tolist()]
    return TextAnalysis(shown, probs, top_chars, top_probs, unknown)


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


def value_range(name: str) -> tuple[float, float]:
    """The range an activation lies in: sigmoid gates in [0, 1]; h, tanh-ed c, g, n in [-1, 1]."""
    return (0.0, 1.0) if name in ("i", "f", "o", "r", "z") else (-1.0, 1.0)


def _gates(cell: str, xw, h, w_hh, b_hh) -> dict:
    """The gate activations of one step (the same equations as charrnn.model.cells)."""
    if cell == "lstm":
        i, f, g, o = torch.addmm(xw + b_hh, h, w_hh.t()).chunk(4, dim=1)  # (B, H) each
        return {"i": i.sigmoid(), "f": f.sigmoid(), "g": g.tanh(), "o": o.sigmoid()}
    if cell == "gru":
        x_r, x_z, x_n = xw.chunk(3, dim=1)
        h_r, h_z, h_n = torch.addmm(b_hh, h, w_hh.t()).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        return {"r": r, "z": torch.sigmoid(x_z + h_z), "n": torch.tanh(x_n + r * h_n)}
    return {}


@torch.no_grad()
def record_activations(
    model: CharRNN, vocab: Vocabulary, text: str, layer: int = -1
) -> Activations:
    """Step through `text` with the textbook cell equations, recording layer `layer`'s
    h (and c for LSTM) after each character and the gates computed while reading it."""
    config = model.config
    if not -config.layers <= layer < config.layers:
        raise CharRNNError(f"layer {layer} does not exist: the model has {config.layers}")
    layer %= config.layers
    ids, shown, unknown = known_text(vocab, text)
    decoder = StepDecoder(model)
    cell = config.cell
    zeros = torch.zeros(1, config.hidden)
    layers = [(zeros, zeros) if cell == "lstm" else zeros for _ in range(config.layers)]
    names = recorded_names(cell)
    values = {name: np.zeros((len(ids), config.hidden), dtype=np.float32) for name in names}
    sequence = vocab.with_start(ids).tolist()
    first = len(sequence) - len(ids)  # the start id is read but not recorded
    for t, char_id in enumerate(sequence):
        x = None
        for k in range(config.layers):
            if k == 0:
                xw = decoder.input_table[torch.tensor([char_id])]  # (1, G*H)
            else:
                xw = torch.addmm(decoder.b_ih[k], x, decoder.w_ih[k].t())
            w_hh, b_hh = decoder.w_hh[k], decoder.b_hh[k]
            previous_h = layers[k][0] if cell == "lstm" else layers[k]
            gates = _gates(cell, xw, previous_h, w_hh, b_hh) if k == layer else {}
            if cell == "lstm":
                layers[k] = lstm_step(xw, *layers[k], w_hh, b_hh)
                x = layers[k][0]
            else:
                layers[k] = x = (gru_step if cell == "gru" else rnn_step)(xw, layers[k], w_hh, b_hh)
            if k == layer and t >= first:
                row = t - first
                values["h"][row] = x[0].numpy()
                if cell == "lstm":
                    values["c"][row] = layers[k][1][0].numpy()
                for name, gate in gates.items():
                    values[name][row] = gate[0].numpy()
    return Activations(shown, cell, layer, values, unknown)


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
