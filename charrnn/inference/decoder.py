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
  narrow projection and its symbols' logits. `step` returns the exact
  log-distribution in vocabulary-id order (for beam search and tests);
  sampling draws from the factors instead (`ClusterDraw`), exactly from the
  distribution temperature, top-k and top-p make of the model's, with no work
  for the clusters a draw does not land in: at temperature T <= 1 the head's
  entries by Gumbel-max at T, then, for a cluster, a symbol within it, kept
  with a probability that corrects the product of the two tempered draws to
  the tempered whole; above 1, or with top-k / top-p, from every cluster;
- otherwise the next character is drawn with the Gumbel-max trick,
  argmax(logits / T + Gumbel noise), which samples exactly from
  softmax(logits / T) with no exp, sum or cumulative sum; the noise is drawn
  in blocks of steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..config import ModelConfig
from ..model.layout import EMBEDDING, ORDER, cluster_weights, clusters, head_weights, layer_weights

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
    CharRNN.state_dict() (model/layout.py; LoadedModel.weights), or from a CharRNN
    (`from_model`).
    """

    def __init__(self, config: ModelConfig, weights: Mapping[str, np.ndarray]):
        self.cell, self.layers, self.hidden = config.cell, config.layers, config.hidden
        hidden = config.hidden
        weight = lambda name: np.asarray(weights[name], dtype=np.float32)  # noqa: E731
        # Weights in torch's layout, (outputs, inputs), C-contiguous: at batch 1 each
        # product is a BLAS matrix-vector product that streams the matrix row by row.
        self.w_ih, self.w_hh, self.b_in, self.b_hn = [], [], [], []
        for k in range(config.layers):
            w_ih, w_hh, b_ih, b_hh = map(weight, layer_weights(k))  # (G*H, n_in), (G*H, H)
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
        embedding = weight(EMBEDDING)  # (V, E)
        self.input_table = embedding @ self.w_ih[0].T + self.b_in[0]  # (V, G*H)
        self.adaptive = config.output == "adaptive"
        head_w, head_b = head_weights(config)
        self.head_w = np.ascontiguousarray(weight(head_w))  # (V or H0 + clusters, H)
        self.head_b = weight(head_b).copy()
        if self.adaptive:
            self.shortlist = config.cutoffs[0]  # H0: symbols in the head
            self.cutoffs = config.cutoffs  # the rank where each cluster starts
            self.tails = [  # per cluster: projection (P_k, H), output (size_k, P_k)
                tuple(np.ascontiguousarray(weight(name)) for name in cluster_weights(k))
                for k in range(len(clusters(config)))
            ]
            # id -> rank: the position of each id's log-probability in rank order
            self.ranks = np.argsort(np.asarray(weights[ORDER]))
        self._buffers = {}  # (layer, B) -> gate buffers, reused every step
        # Every matrix product goes through here: inference.batching swaps in one that
        # multiplies groups of rows apart, so that a request's rows are computed as
        # `charrnn sample` computes them, whatever else shares the step.
        self.product = _product

    @classmethod
    def from_model(cls, model: CharRNN) -> Decoder:
        """The decoder of a torch CharRNN, with its current weights."""
        weights = {k: _array(v) for k, v in model.state_dict().items() if k != ORDER}
        if model.config.output == "adaptive":
            weights[ORDER] = model.head.order.cpu().numpy()
        return cls(model.config, weights)

    def zero_state(self, batch: int = 1) -> list:
        """The state before any character, as CharRNN.forward starts from."""
        zeros = lambda: np.zeros((batch, self.hidden), np.float32)  # noqa: E731
        return [(zeros(), zeros()) if self.cell == "lstm" else zeros() for _ in range(self.layers)]

    def read(self, ids: Sequence[int], layers: list | None = None) -> tuple[np.ndarray, list]:
        """Read `ids` one by one into `layers` (advanced in place; default a fresh batch-1
        state): the logits (1, V) after the last one and the state. Without ids, the
        logits the state gives as it is."""
        layers = self.zero_state() if layers is None else layers
        x = self.top(layers)
        for i in ids:
            x = self.advance(np.array([i]), layers)
        return self.output(x), layers  # only after the last: the others' would be unused

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
                self.product(self.w_ih[k], x, inputs)
                inputs += self.b_in[k]
            if self.cell == "lstm":
                x = self._lstm(k, inputs, *layers[k])
            elif self.cell == "gru":
                x = self._gru(k, inputs, layers[k])
            else:
                x = layers[k]
                gates = self.product(self.w_hh[k], x, self._gate_buffer(k, len(ids))[0])
                gates += inputs
                np.tanh(gates, out=x)
        return x

    def output(self, x: np.ndarray) -> np.ndarray:
        """The last layer's h (B, H) -> logits (B, V) (log-probabilities when adaptive)."""
        logits = self.head_logits(x)
        if self.adaptive:
            return self._adaptive_log_probs(x, logits)
        return logits  # (B, V)

    def head_logits(self, x: np.ndarray) -> np.ndarray:
        """x (B, H) -> the output layer's first product, (B, V), or for an adaptive layer
        its head's (B, H0 + clusters)."""
        logits = self.product(self.head_w, x, np.empty((len(x), len(self.head_b)), np.float32))
        logits += self.head_b
        return logits

    def _adaptive_log_probs(self, x: np.ndarray, head: np.ndarray) -> np.ndarray:
        """x (B, H) and the head's logits (B, H0 + clusters) -> log p (B, V) in id order."""
        return self.ranked_log_probs(x, head)[:, self.ranks]

    def cluster_logits(self, k: int, x: np.ndarray) -> np.ndarray:
        """x (B, H) -> tail cluster k's logits (B, size_k), through its projection."""
        projection, output = self.tails[k]
        narrow = self.product(projection, x, np.empty((len(x), len(projection)), np.float32))
        return self.product(output, narrow, np.empty((len(x), len(output)), np.float32))

    def ranked_log_probs(self, x: np.ndarray, head: np.ndarray) -> np.ndarray:
        """x (B, H) and the head's logits (B, H0 + clusters) -> log p (B, V) in
        frequency-rank order (the head's symbols, then each cluster's)."""
        head = _log_softmax(head)
        parts = [head[:, : self.shortlist]]
        for k in range(len(self.tails)):
            within = _log_softmax(self.cluster_logits(k, x))  # (B, size_k)
            within += head[:, self.shortlist + k, None]
            parts.append(within)
        return np.concatenate(parts, axis=1)  # (B, V)

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
        self.product(self.w_hh[k], h, gates)
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
        from_h = self.product(self.w_hh[k], h, self._gate_buffer(k, len(h))[0])  # (B, 3H)
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
    """Draws the next id per row of an adaptive decoder's h (B, H), exactly from the
    distribution that temperature, top-k and top-p make of the model's, without
    computing the clusters a row does not land in.

    0 < T <= 1, no top-k / top-p (`_draw`): with a = 1/T, p_T(s) ∝ p(s)^a. The
    head's entries (frequent symbols, then one per cluster c) are drawn from
    softmax(a * head logits) by the Gumbel-max trick; a frequent symbol is kept;
    for a cluster c, a symbol within it is drawn from p(s | c)^a / Z_c, where
    Z_c = sum over c of p(s | c)^a <= 1, and kept with probability Z_c. A kept
    s in c was drawn with probability ∝ p(c)^a Z_c p(s | c)^a / Z_c = p(s)^a,
    a frequent symbol with ∝ p(s)^a: exactly p_T. A rejected row draws again
    with c's entry weighted by the Z_c now known (adaptive rejection: every
    proposal bounds the target, and c is then kept whenever drawn), so a row
    computes each cluster at most twice and draws at most clusters + 1 times.
    At T = 1, Z_c = 1: the plain two-level draw.
    T > 1, or top-k / top-p: p_T needs every cluster's normaliser of
    p(s | c)^(1/T), so all clusters are computed (`_from_all_clusters`).
    T = 0: the most probable symbol.
    """

    def __init__(self, decoder: Decoder, temperature=1.0, top_k=0, top_p=1.0, seed=0):
        self.decoder = decoder
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.order = np.argsort(decoder.ranks)  # rank -> id
        self.rng = np.random.default_rng(seed)
        self.noise = GumbelNoise(self.rng, scale=temperature)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        head = self.decoder.head_logits(x)
        truncated = self.top_k != 0 or self.top_p != 1.0
        if self.temperature == 0 or truncated or self.temperature > 1.0:
            return self.order[self._from_all_clusters(x, head)]
        return self.order[self._draw(x, head)]

    def _draw(self, x: np.ndarray, head: np.ndarray) -> np.ndarray:
        """Ranks (B,) drawn from p_T, 0 < T <= 1 (see the class's docstring)."""
        decoder, a = self.decoder, 1.0 / self.temperature
        # argmax(head / T + g) = argmax(head + T g): the noise comes scaled by T.
        picked = (head + self.noise.next(head.shape)).argmax(axis=-1)  # (B,) head entries
        if picked.max() < decoder.shortlist:  # frequent symbols only (the common case)
            return picked
        # Per row and cluster: log Z_c once computed, else its bound 0 (Z_c <= 1).
        log_z = np.zeros((len(x), len(decoder.tails)))
        known = np.zeros(log_z.shape, bool)
        pending = np.arange(len(x))
        while True:
            cluster = picked[pending] - decoder.shortlist
            rejected = []
            for k in np.unique(cluster[cluster >= 0]).tolist():
                rows = pending[cluster == k]
                within, rows_log_z = _tempered_draw(
                    decoder.cluster_logits(k, x[rows]), a, self.rng.random(len(rows))
                )
                picked[rows] = decoder.cutoffs[k] + within
                if a == 1.0:
                    continue
                # Proposed with the bound: kept with probability Z_c; with Z_c known: kept.
                kept = known[rows, k] | (self.rng.random(len(rows)) < np.exp(rows_log_z))
                known[rows, k], log_z[rows, k] = True, rows_log_z
                rejected.append(rows[~kept])
            pending = np.concatenate(rejected) if rejected else pending[:0]
            if not len(pending):
                return picked
            retry = head[pending]  # (P, H0 + clusters): known clusters at their exact weight
            retry[:, decoder.shortlist :] += self.temperature * log_z[pending]
            retry += self.noise.fresh(retry.shape)
            picked[pending] = retry.argmax(axis=-1)

    def _from_all_clusters(self, x: np.ndarray, head: np.ndarray) -> np.ndarray:
        """Ranks drawn from every cluster's log-probabilities in frequency-rank order,
        tempered and restricted (top-k / top-p do not depend on the order, and no
        permutation of all V is needed); T = 0: the most probable."""
        ranked = self.decoder.ranked_log_probs(x, head)  # (B, V) in rank order
        if self.temperature == 0:
            return ranked.argmax(axis=-1)
        ranked *= 1.0 / self.temperature
        ranked = restrict(ranked, self.top_k, self.top_p)
        return _inverse_cdf(ranked, self.rng.random(len(x)))


def _tempered_draw(
    logits: np.ndarray, a: float, uniform: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of logits (B, N) and uniform (B,): the index drawn from softmax(a * logits)
    (inverse CDF), and log Z = log of the sum of softmax(logits)^a (0 when a = 1)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted * a) if a != 1.0 else np.exp(shifted)
    picked = _inverse_weights(weights, uniform)
    if a == 1.0:
        return picked, np.zeros(len(logits))
    # log sum p^a = log sum exp(a (l - max)) - a log sum exp(l - max)
    log_z = np.log(weights.sum(axis=-1, dtype=np.float64))
    log_z -= a * np.log(np.exp(shifted).sum(axis=-1, dtype=np.float64))
    return picked, log_z


class GumbelNoise:
    """Gumbel(0, 1) noise times `scale`, for argmax(logits + noise), which draws exactly
    from softmax(logits / scale); drawn NOISE_BLOCK steps at a time for a fixed shape.
    From float32 uniforms (a third of float64's cost): the Gumbel values are then
    cut to about [-2.8, 16.6], a change of the draw's probabilities below 1e-7."""

    def __init__(self, rng: np.random.Generator, scale: float = 1.0):
        self.rng, self.scale = rng, scale
        self.block = None
        self.used = NOISE_BLOCK

    def next(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next step's noise of `shape` (float32; read it before the next call)."""
        if self.used == NOISE_BLOCK or self.block.shape[1:] != shape:
            self.block = self.fresh((NOISE_BLOCK, *shape))
            self.used = 0
        self.used += 1
        return self.block[self.used - 1]

    def fresh(self, shape: tuple[int, ...]) -> np.ndarray:
        """Noise of `shape` outside the blocks (for rows drawing again)."""
        noise = self.rng.random(shape, dtype=np.float32)
        with np.errstate(divide="ignore"):  # u = 0 gives -inf: never the argmax
            np.log(noise, out=noise)
            np.negative(noise, out=noise)
            np.log(noise, out=noise)
        noise *= -self.scale
        return noise


def _inverse_cdf(logits: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Per row of logits (B, N), the index drawn from their softmax with a uniform (B,):
    the first whose cumulative probability exceeds it."""
    return _inverse_weights(np.exp(logits - logits.max(axis=-1, keepdims=True)), uniform)


def _inverse_weights(weights: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Per row of non-negative weights (B, N), the index drawn in proportion to them."""
    cumulative = np.cumsum(weights, axis=-1, dtype=np.float64)
    if len(cumulative) == 1:  # batch 1: a binary search instead of comparing every entry
        return np.array([np.searchsorted(cumulative[0], uniform[0] * cumulative[0, -1], "right")])
    return (cumulative < uniform[:, None] * cumulative[:, -1:]).sum(axis=-1)


class Chooser:
    """Picks the next id per row of logits (B, V): argmax at temperature 0, else a
    sample from softmax(logits / temperature), optionally restricted to the top_k
    most likely characters and/or the smallest set reaching probability top_p."""

    def __init__(self, temperature=1.0, top_k=0, top_p=1.0, seed=0):
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.rng = np.random.default_rng(seed)
        self.noise = GumbelNoise(self.rng)

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        if self.temperature == 0:
            return logits.argmax(axis=-1)
        logits = logits * (1.0 / self.temperature)
        if self.top_k or self.top_p < 1.0:
            logits = restrict(logits, self.top_k, self.top_p)
        logits += self.noise.next(logits.shape)
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
