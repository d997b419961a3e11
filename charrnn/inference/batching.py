"""Continuous batching: many requests' samples advance together, one decoder step for
all of them, with requests joining and leaving between steps (what a server runs).

    batch = Batch(loaded)
    stream = batch.join("ROMEO.", SampleConfig(length=200, seed=1))
    while batch.streams:
        for stream, chars in batch.step():   # per stream, a character per sample
            ...

Rows: each stream brings `num_samples` rows; the state (per layer, h (B, H), and c
for LSTM) and the pending logits (B, V) hold every stream's rows side by side.

Exactness: a stream that must reproduce `charrnn sample` (`exact`, what a request
with a seed asks) gets its matrix products on its own rows, the very calls `generate`
makes (a matrix-vector product at one row: a batched matrix product rounds
differently); its noise comes from its own generator in the same blocks (Chooser),
and the element-wise work is row by row anyway. So its text and logits are
`generate`'s to the bit, whatever shares the step (tests/test_serve.py). The
other streams share one product per weight and step, computed the fastest way
for the batch's size (timed on first use: `_shared_product`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..config import SampleConfig
from ..model.modelfile import LoadedModel
from .decoder import Chooser, ClusterDraw, Decoder, _product, repeat_rows
from .sample import read_prime


@dataclass(eq=False)
class Stream:
    """One request's samples in a Batch: `num_samples` rows that join and leave together."""

    settings: SampleConfig
    exact: bool
    choose: Chooser | ClusterDraw
    rows: slice = field(
        default_factory=lambda: slice(0, 0)
    )  # where its rows sit in the batch's arrays
    produced: int = 0  # characters per sample so far
    stopped: list[bool] = field(default_factory=list)  # per sample: ended by `stop`
    tails: list[str] = field(default_factory=list)  # per sample: the last len(stop) chars
    cancelled: bool = False
    finished: bool = False

    @property
    def num_samples(self) -> int:
        return self.settings.num_samples

    def cancel(self) -> None:
        """Leave the batch at the next step (thread-safe: a flag the step reads)."""
        self.cancelled = True

    def finish_reasons(self) -> list[str]:
        """Per sample, as OpenAI's finish_reason: "stop" (ended by `stop`) or "length"."""
        return ["stop" if s else "length" for s in self.stopped]


class Batch:
    """The samples in flight of one model, advanced one character per `step`."""

    def __init__(self, loaded: LoadedModel):
        self.loaded, self.vocab = loaded, loaded.vocab
        self.decoder = Decoder(loaded.config, loaded.weights)
        self.decoder.product = self._product
        self.adaptive = self.decoder.adaptive
        self.streams: list[Stream] = []
        self.rows = 0  # the samples in flight, all streams together
        self.layers: list = self.decoder.zero_state(0)
        self.logits = np.zeros((0, len(self.vocab)), np.float32)  # unused when adaptive
        self.groups: list[slice] = []  # row groups: the shared rows, then each exact stream
        self.shared = slice(0, 0)  # the rows of the streams without `exact`
        self.ways: dict = {}  # (weight, rows) -> the fastest of PRODUCTS
        self._stepping = False
        self.rows_freed = 0  # rows of cancelled streams taken out of the batch
        self.steps = 0

    # ------------------------------------------------------------------ joining
    def join(self, prime: str, settings: SampleConfig, exact: bool = True) -> Stream:
        """Read `prime` (as `generate` reads it; errors surface here) and add the
        stream's rows to the batch; they take part from the next `step`."""
        seed = settings.seed or 0
        logits, layers = read_prime(self.loaded, self.decoder, self.vocab, prime, seed)
        copies = settings.num_samples
        layers = repeat_rows(layers, copies)
        if self.adaptive:
            choose = ClusterDraw(
                self.decoder, settings.temperature, settings.top_k, settings.top_p, seed
            )
        else:
            choose = Chooser(settings.temperature, settings.top_k, settings.top_p, seed)
        stream = Stream(settings, exact, choose, stopped=[False] * copies, tails=[""] * copies)
        if settings.length == 0:
            stream.finished = True
            return stream
        self._arrange(self.streams + [stream], {id(stream): (np.repeat(logits, copies, 0), layers)})
        return stream

    def _arrange(self, streams: list[Stream], new: dict | None = None) -> None:
        """Lay out the rows of `streams` (shared ones first, then each exact one): the
        state and logits rebuilt from the current arrays and the `new` streams' own."""
        new = new or {}
        streams = [s for s in streams if not s.exact] + [s for s in streams if s.exact]
        parts_logits, parts_layers, start = [], [], 0
        for s in streams:
            if id(s) in new:
                logits, layers = new[id(s)]
            else:
                logits = self.logits[s.rows]
                layers = _rows(self.layers, s.rows)
            parts_logits.append(logits)
            parts_layers.append(layers)
            s.rows = slice(start, start + s.num_samples)
            start += s.num_samples
        self.streams, self.rows = streams, start
        if not streams:
            self.layers = self.decoder.zero_state(0)
            self.logits = self.logits[:0]
            return
        self.logits = np.concatenate(parts_logits) if not self.adaptive else self.logits[:0]
        self.layers = _concat(parts_layers)
        shared = sum(s.num_samples for s in streams if not s.exact)
        self.shared = slice(0, shared)
        self.groups = ([self.shared] if shared else []) + [s.rows for s in streams if s.exact]

    # ------------------------------------------------------------------ stepping
    def step(self) -> list[tuple[Stream, list[str]]]:
        """One character for every sample in flight: per stream, its characters ("" for
        a sample already stopped). Streams that finish (every sample stopped, or
        `length` reached) or were cancelled leave the batch; then the rest advance."""
        cancelled = [s for s in self.streams if s.cancelled]
        if cancelled:
            self.rows_freed += sum(s.num_samples for s in cancelled)
            for s in cancelled:
                s.finished = True
            self._arrange([s for s in self.streams if not s.cancelled])
        if not self.streams:
            return []
        top = self.decoder.top(self.layers) if self.adaptive else None
        ids = np.empty(self.rows, np.int64)
        out = []
        for s in self.streams:
            pending = top[s.rows] if self.adaptive else self.logits[s.rows]
            picked = s.choose(pending)
            ids[s.rows] = picked
            chars = []
            stop = s.settings.stop
            for k, i in enumerate(picked.tolist()):
                if s.stopped[k]:
                    chars.append("")
                    continue
                char = self.vocab.chars[i]
                chars.append(char)
                if stop:
                    s.tails[k] = (s.tails[k] + char)[-len(stop) :]
                    s.stopped[k] = s.tails[k] == stop
            s.produced += 1
            s.finished = all(s.stopped) or s.produced >= s.settings.length
            out.append((s, chars))
        if any(s.finished for s in self.streams):
            staying = [s for s in self.streams if not s.finished]
            if staying:
                ids = np.concatenate([ids[s.rows] for s in staying])
            self._arrange(staying)  # their order is kept: shared first, then exact
            if not staying:
                return out
        self._stepping = True  # the products below run over the whole batch: by group
        try:
            if self.adaptive:
                self.decoder.advance(ids, self.layers)
            else:
                self.logits = self.decoder.step(ids, self.layers)
        finally:
            self._stepping = False
        self.steps += 1
        return out

    def _product(self, weight: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The decoder's products: during a full-batch step, group by group (each exact
        stream alone, the shared rows together); otherwise as the sampler computes."""
        groups = self.groups
        if not self._stepping:
            return _product(weight, x, out)
        for rows in groups:
            if rows == self.shared and rows.stop - rows.start > 1:
                self._shared_product(weight, x[rows], out[rows])
            else:
                _product(weight, x[rows], out[rows])
        return out

    def _shared_product(self, weight: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
        """The shared rows' product, the fastest of PRODUCTS for this weight and batch
        size, timed on first use: which is fastest depends on the BLAS and the CPU (one
        2-core machine's OpenBLAS took 463 µs for a batch-16 x @ W.T of 1536x384, 253 µs
        for (W @ x.T).T, and 553 µs for 16 matrix-vector products)."""
        key = (id(weight), len(x))
        way = self.ways.get(key)
        if way is None:
            timings = {}
            for name, product in PRODUCTS.items():
                best = math.inf
                for _ in range(3):
                    began = time.perf_counter()
                    product(weight, x, out)
                    best = min(best, time.perf_counter() - began)
                timings[name] = best
            way = self.ways[key] = min(timings, key=timings.get)
        PRODUCTS[way](weight, x, out)


def _rows_apart(weight: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(x)):
        np.dot(weight, x[i], out=out[i])


def _transposed(weight: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, (weight @ x.T).T)


# Ways to compute out (B, N) = x (B, K) @ weight (N, K)^T for the shared rows.
PRODUCTS = {
    "matmul": lambda weight, x, out: np.matmul(x, weight.T, out=out),
    "transposed": _transposed,
    "rows apart": _rows_apart,
}


def _rows(layers: list, rows: slice) -> list:
    """A state's rows `rows` (views)."""
    pick = lambda layer: tuple(p[rows] for p in layer) if isinstance(layer, tuple) else layer[rows]
    return [pick(layer) for layer in layers]


def _concat(parts: list[list]) -> list:
    """Per-stream states (lists per layer) -> one state with their rows stacked (copies)."""
    out = []
    for k, layer in enumerate(parts[0]):
        if isinstance(layer, tuple):
            out.append(tuple(np.concatenate([p[k][j] for p in parts]) for j in range(len(layer))))
        else:
            out.append(np.concatenate([p[k] for p in parts]))
    return out
