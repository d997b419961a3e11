"""The sampler's decoder: one time step of a CharRNN per call, in numpy.

Why numpy rather than torch: at batch 1 a step is one matrix-vector product
per layer plus a dozen small vector operations. Measured on the project's
idle 2-core CPU (1x512 LSTM, one thread): a minimal torch step took 297 µs,
the same step in numpy 114 µs (torch's per-call dispatch); numpy's OpenBLAS
sgemv alone took 74.6 µs where torch's MKL mv took 130 µs. And numpy alone
starts in a fraction of the second `import torch` takes. The weights are the
model's, rearranged once; tests check this decoder against the textbook cells
(charrnn.model.stepper) and the fused `CharRNN.forward`. How many BLAS threads
it may use is set in `sample`.

What makes the step short:
- layer 0's input projection is a per-character table (V, G*H), so a row
  lookup replaces the input matrix product;
- biases are folded into that table (or into layer k's input bias);
- LSTM gates are reordered (i, f, o, g) and the sigmoid rows pre-scaled by 1/2,
  so ONE tanh over all 4H values gives every gate: sigmoid(x) = (1 + tanh(x/2)) / 2;
- an adaptive output layer (ModelConfig.output) is computed from its factors:
  the head's logits (frequent symbols, then one per cluster), each cluster's
  narrow projection and its symbols' logits; each part is log-softmaxed, the
  clusters' shifted by their head log-probability, and the result put back in
  vocabulary-id order: the exact log-distribution (B, V), for hidden x (head +
  clusters) + sum of projection x cluster size multiply-adds instead of hidden x V.
  log p differs from the full softmax's logits by a constant per row, so the
  Chooser's temperature, top-k and top-p act on it exactly as on the full
  distribution: p_T(s) ∝ p(s)^(1/T), which needs every cluster's normaliser of
  p(s | cluster)^(1/T), hence all of them. At temperature 1 with no top-k / top-p
  the distribution itself is drawn, and `ClusterDraw` computes only the head and
  the one cluster drawn from it (an exact draw at each level). Measured at
  V = 2,700 (cutoffs 337, 1,685), 1x384 LSTM, batch 1, one thread, with the
  draw, on the 2-core machine while other work ran: full softmax 4,200-4,300
  steps/s, adaptive with the full log p 3,600-4,600 (the Gumbel noise for all V
  symbols then costs as much as the products saved), two-level 5,500-6,800;
- the next character is drawn with the Gumbel-max trick,
  argmax(logits / T + Gumbel noise), which samples exactly from
  softmax(logits / T) with no exp, sum or cumulative sum; the noise is drawn
  in blocks of steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..config import ModelConfig

if TYPE_CHECKING:
    from ..model.network import CharRNN, State

NOISE_BLOCK = 256  # steps of Gumbel noise drawn at once


def _array(tensor) -> np.ndarray:
    """A torch tensor (any dtype, any device) as a float32 numpy array."""
    return np.ascontiguousarray(tensor.detach().cpu().double().numpy(), dtype=np.float32)


class Decoder:
    """Advances B streams one character at a time. State: a list, per layer, of
    h (B, H) float32, or of the pair (h, c) for LSTM, which `step` updates in place.

    Built from a config and its weights as numpy arrays named as in
    CharRNN.state_dict() (LoadedModel.weights), or from a CharRNN (`from_model`).
    """

    def __init__(self, config: ModelConfig, weights: Mapping[str, np.ndarray]):
        self.cell, self.layers, self.hidden = config.cell, config.layers, config.hidden
        hidden = config.hidden
        weight = lambda name: np.asarray(weights[name], dtype=np.float32)  # noqa: E731
        # Weights in torch's layout, (outputs, inputs), C-contiguous: at batch 1 each
        # product is a BLAS matrix-vector product that streams the matrix row by row.
        self.w_ih, self.w_hh, self.b_in, self.b_hn = [], [], [], []
        for k in range(config.layers):
            w_ih = weight(f"rnn.weight_ih_l{k}")  # (G*H, n_in)
            w_hh = weight(f"rnn.weight_hh_l{k}")  # (G*H, H)
            b_ih = weight(f"rnn.bias_ih_l{k}")
            b_hh = weight(f"rnn.bias_hh_l{k}")
            if self.cell == "lstm":
                # torch's order i, f, g, o -> i, f, o, g; halve the sigmoid rows.
                order = np.r_[0 : 2 * hidden, 3 * hidden : 4 * hidden, 2 * hidden : 3 * hidden]
                scale = np.r_[np.full(3 * hidden, 0.5), np.ones(hidden)].astype(np.float32)
                w_ih, w_hh = w_ih[order] * scale[:, None], w_hh[order] * scale[:, None]
                b_in = (b_ih + b_hh)[order] * scale
            elif self.cell == "gru":
                # r and z see both biases; n sees b_hn inside r * (W_hn h + b_hn).
                scale = np.r_[np.full(2 * hidden, 0.5), np.ones(hidden)].astype(np.float32)
                w_ih, w_hh = w_ih * scale[:, None], w_hh * scale[:, None]
                b_in = np.r_[(b_ih + b_hh)[: 2 * hidden], b_ih[2 * hidden :]] * scale
                self.b_hn.append(b_hh[2 * hidden :].copy())
            else:
                b_in = b_ih + b_hh
            self.w_ih.append(np.ascontiguousarray(w_ih, dtype=np.float32))
            self.w_hh.append(np.ascontiguousarray(w_hh, dtype=np.float32))
            self.b_in.append(b_in.astype(np.float32))
        embedding = weight("embedding.weight")  # (V, E)
        self.input_table = embedding @ self.w_ih[0].T + self.b_in[0]  # (V, G*H)
        self.adaptive = config.output == "adaptive"
        prefix = "head.head." if self.adaptive else "head."
        self.head_w = np.ascontiguousarray(weight(prefix + "weight"))  # (V or H0 + clusters, H)
        self.head_b = weight(prefix + "bias").copy()
        if self.adaptive:
            self.shortlist = config.cutoffs[0]  # H0: symbols in the head
            self.cutoffs = config.cutoffs  # the rank where each cluster starts
            self.tails = [  # per cluster: projection (P_k, H), output (size_k, P_k)
                (
                    np.ascontiguousarray(weight(f"head.tail.{k}.0.weight")),
                    np.ascontiguousarray(weight(f"head.tail.{k}.1.weight")),
                )
                for k in range(len(config.clusters()))
            ]
            # id -> rank: the position of each id's log-probability in rank order
            self.ranks = np.argsort(np.asarray(weights["head.order"]))
        self._buffers = {}  # (layer, B) -> gate buffers, reused every step

    @classmethod
    def from_model(cls, model: CharRNN) -> Decoder:
        """The decoder of a torch CharRNN, with its current weights."""
        weights = {k: _array(v) for k, v in model.state_dict().items() if k != "head.order"}
        if model.config.output == "adaptive":
            weights["head.order"] = model.head.order.cpu().numpy()
        return cls(model.config, weights)

    def zero_state(self, batch: int = 1) -> list:
        """The state before any character, as CharRNN.forward starts from."""
        zeros = lambda: np.zeros((batch, self.hidden), np.float32)  # noqa: E731
        return [(zeros(), zeros()) if self.cell == "lstm" else zeros() for _ in range(self.layers)]

    def read(self, ids: Sequence[int]) -> tuple[np.ndarray, list]:
        """Read `ids` one by one into a fresh batch-1 state: the logits (1, V) after
        the last one (it must exist) and the state."""
        layers = self.zero_state()
        for i in ids:
            logits = self.step(np.array([i]), layers)
        return logits, layers

    def state_from_torch(self, state: State) -> list:
        """torch's layout (h (L, B, H), or (h, c)) -> this decoder's per-layer list."""
        if self.cell == "lstm":
            return [(_array(h), _array(c)) for h, c in zip(state[0], state[1])]
        return [_array(h) for h in state]

    def step(self, ids: np.ndarray, layers: list) -> np.ndarray:
        """ids (B,) -> logits (B, V) for the next character (log-probabilities for an
        adaptive output layer); `layers` advances in place."""
        return self.output(self.advance(ids, layers))

    @staticmethod
    def top(layers: list) -> np.ndarray:
        """The last layer's h (B, H) in a state: what the output layer reads."""
        return layers[-1][0] if isinstance(layers[-1], tuple) else layers[-1]

    def advance(self, ids: np.ndarray, layers: list) -> np.ndarray:
        """ids (B,) -> the last layer's new h (B, H), a part of `layers` (which advances
        in place): read it before the next step."""
        x = None
        for k in range(self.layers):
            if k == 0:  # a row of the table: a view at batch 1, a copy otherwise
                inputs = self.input_table[ids[0]] if len(ids) == 1 else self.input_table[ids]
            else:
                inputs = np.empty((len(ids), len(self.b_in[k])), np.float32)
                _product(self.w_ih[k], x, inputs)
                inputs += self.b_in[k]
            if self.cell == "lstm":
                x = self._lstm(k, inputs, *layers[k])
            elif self.cell == "gru":
                x = self._gru(k, inputs, layers[k])
            else:
                x = layers[k]
                gates = _product(self.w_hh[k], x, self._gate_buffer(k, len(ids))[0])
                gates += inputs
                np.tanh(gates, out=x)
        return x

    def output(self, x: np.ndarray) -> np.ndarray:
        """The last layer's h (B, H) -> logits (B, V) (log-probabilities when adaptive)."""
        logits = _product(self.head_w, x, np.empty((len(x), len(self.head_b)), np.float32))
        logits += self.head_b
        if self.adaptive:
            return self._adaptive_log_probs(x, logits)
        return logits  # (B, V)

    def _adaptive_log_probs(self, x: np.ndarray, head: np.ndarray) -> np.ndarray:
        """x (B, H) and the head's logits (B, H0 + clusters) -> log p (B, V) in id order."""
        head = _log_softmax(head)
        parts = [head[:, : self.shortlist]]
        for k, (projection, output) in enumerate(self.tails):
            narrow = _product(projection, x, np.empty((len(x), len(projection)), np.float32))
            within = _log_softmax(
                _product(output, narrow, np.empty((len(x), len(output)), np.float32))
            )  # (B, size_k)
            within += head[:, self.shortlist + k, None]
            parts.append(within)
        return np.concatenate(parts, axis=1)[:, self.ranks]  # (B, V)

    def _gate_buffer(self, k: int, batch: int) -> tuple[np.ndarray, ...]:
        """A (B, G*H) buffer for layer k's gates, then views of its H-wide blocks."""
        key = (k, batch)
        if key not in self._buffers:
            gates = np.empty((batch, self.w_hh[k].shape[0]), np.float32)
            blocks = np.split(gates, gates.shape[1] // self.hidden, axis=1)
            self._buffers[key] = (gates, *blocks)
        return self._buffers[key]

    def _lstm(self, k: int, inputs: np.ndarray, h: np.ndarray, c: np.ndarray) -> np.ndarray:
        """h and c (B, H) are updated in place; inputs (B, 4H) is the input's part."""
        gates, i, f, o, g = self._gate_buffer(k, len(h))
        _product(self.w_hh[k], h, gates)
        gates += inputs
        np.tanh(gates, out=gates)
        sigmoids = gates[:, : 3 * self.hidden]
        sigmoids *= 0.5
        sigmoids += 0.5  # sigmoid of the original pre-activations: i, f, o
        c *= f
        g *= i
        c += g  # c' = f c + i g
        np.tanh(c, out=h)
        h *= o  # h' = o tanh(c')
        return h

    def _gru(self, k: int, inputs: np.ndarray, h: np.ndarray) -> np.ndarray:
        """h (B, H) is updated in place; inputs (B, 3H) is the input's part."""
        hidden = self.hidden
        from_h = _product(self.w_hh[k], h, self._gate_buffer(k, len(h))[0])  # (B, 3H)
        rz = from_h[:, : 2 * hidden]
        rz += inputs[..., : 2 * hidden]
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        r, z = from_h[:, :hidden], from_h[:, hidden : 2 * hidden]
        n = from_h[:, 2 * hidden :]
        n += self.b_hn[k]
        n *= r
        n += inputs[..., 2 * hidden :]
        np.tanh(n, out=n)  # n = tanh(W_xn x + b_xn + r (W_hn h + b_hn))
        h -= n
        h *= z
        h += n  # h' = (1 - z) n + z h = n + z (h - n)
        return h


def repeat_rows(layers: list, copies: int) -> list:
    """A per-layer state with each stream repeated `copies` times (B * copies rows)."""
    rows = lambda part: np.repeat(part, copies, axis=0)  # noqa: E731
    return [
        tuple(map(rows, layer)) if isinstance(layer, tuple) else rows(layer) for layer in layers
    ]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in place: z (B, N) float32."""
    z -= z.max(axis=-1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z


def _product(weight: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out (B, N) = x (B, K) @ weight (N, K)^T. At B = 1 a BLAS matrix-vector
    product (2048x512: 42.5 µs against 49.7 µs for the one-row matrix product
    with two threads; equal with one)."""
    if len(x) == 1:
        np.dot(weight, x[0], out=out[0])
    else:
        np.matmul(x, weight.T, out=out)
    return out


class ClusterDraw:
    """Draws the next id per row of an adaptive decoder's h (B, H) from its
    distribution at temperature 1 with no top-k / top-p, computing the head and
    one cluster only: the head's softmax gives a frequent symbol or a cluster
    (exactly its probability: the sum over the cluster's symbols), and in a
    cluster its own softmax gives the symbol, so p(s) = p(cluster) p(s | cluster).
    Each level is drawn by inverting its cumulative distribution with one uniform
    number per row (a Gumbel-max draw would need a noise value per symbol).
    """

    def __init__(self, decoder: Decoder, seed=0):
        self.decoder = decoder
        self.order = np.argsort(decoder.ranks)  # rank -> id
        self.rng = np.random.default_rng(seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        decoder, rows = self.decoder, len(x)
        head = _product(decoder.head_w, x, np.empty((rows, len(decoder.head_b)), np.float32))
        head += decoder.head_b
        uniform = self.rng.random((2, rows))
        picked = _inverse_cdf(head, uniform[0])  # (B,) a head rank, or H0 + cluster
        for k in np.unique(picked[picked >= decoder.shortlist]) - decoder.shortlist:
            projection, output = decoder.tails[k]
            chosen = np.flatnonzero(picked == decoder.shortlist + k)
            within = x[chosen] @ projection.T @ output.T  # (n, size_k)
            picked[chosen] = decoder.cutoffs[k] + _inverse_cdf(within, uniform[1, chosen])
        return self.order[picked]


def _inverse_cdf(logits: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Per row of logits (B, N), the index drawn from their softmax with a uniform (B,):
    the first whose cumulative probability exceeds it."""
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cumulative = np.cumsum(weights, axis=-1, dtype=np.float64)
    return (cumulative < uniform[:, None] * cumulative[:, -1:]).sum(axis=-1)


class Chooser:
    """Picks the next id per row of logits (B, V): argmax at temperature 0, else a
    sample from softmax(logits / temperature), optionally restricted to the top_k
    most likely characters and/or the smallest set reaching probability top_p."""

    def __init__(self, temperature=1.0, top_k=0, top_p=1.0, seed=0):
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.rng = np.random.default_rng(seed)
        self.noise = None
        self.used = NOISE_BLOCK

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        if self.temperature == 0:
            return logits.argmax(axis=-1)
        logits = logits * (1.0 / self.temperature)
        if self.top_k or self.top_p < 1.0:
            logits = restrict(logits, self.top_k, self.top_p)
        if self.used == NOISE_BLOCK or self.noise.shape[1:] != logits.shape:
            uniform = self.rng.random((NOISE_BLOCK, *logits.shape))
            self.noise = -np.log(-np.log(uniform)).astype(np.float32)  # Gumbel(0, 1)
            self.used = 0
        logits += self.noise[self.used]
        self.used += 1
        return logits.argmax(axis=-1)


def restrict(logits: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Logits (B, V) with the characters outside top-k / nucleus top-p set to -inf."""
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        kth = np.partition(logits, vocab - top_k, axis=-1)[:, vocab - top_k, None]  # (B, 1)
        logits = np.where(logits < kth, -np.inf, logits)
    if top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        ranked = np.take_along_axis(logits, order, axis=-1).astype(np.float64)
        probs = np.exp(ranked - ranked[:, :1])
        probs /= probs.sum(axis=-1, keepdims=True)
        # Drop a character when the ones ranked before it already reach top_p.
        drop_ranked = (np.cumsum(probs, axis=-1) - probs) >= top_p
        drop = np.empty_like(drop_ranked)
        np.put_along_axis(drop, order, drop_ranked, axis=-1)
        logits = np.where(drop, -np.inf, logits)
    return logits
