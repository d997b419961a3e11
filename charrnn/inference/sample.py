"""Sampling: generate text one character at a time, O(1) work per character.

The prime is run once through the fused model; after that the numpy
`decoder.Decoder` advances the state one character per step. `StepDecoder`
here is the same step written with the textbook cell equations in torch
(charrnn.model.cells): the readable reference, and what analysis tools step with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from ..config import SampleConfig
from ..errors import CharRNNError, UnknownCharactersError
from ..model.cells import gru_step, lstm_step, rnn_step
from ..model.network import CharRNN, State
from ..text.vocab import Vocabulary
from .blas_threads import (
    ThreadTuner,
    blas_thread_limit,
    blas_thread_setter,
    candidate_counts,
    usable_cores,
)
from .decoder import Chooser, Decoder

SHORT_PRIME = 1000  # characters (with the start newline) fed on one torch thread


class StepDecoder:
    """One time step of a CharRNN for a batch of streams, without autograd.

    The state is kept in torch's layout (h (L, B, H), or (h, c) for LSTM) so it
    interoperates with CharRNN.forward.
    """

    def __init__(self, model: CharRNN):
        config, rnn = model.config, model.rnn
        self.cell = config.cell
        self.layers = config.layers
        with torch.no_grad():
            # Layer 0's input is an embedding row, so W_ih x + b_ih is a per-character
            # table: (V, G*H). One row lookup replaces a matrix product per step.
            self.input_table = torch.addmm(
                rnn.bias_ih_l0, model.embedding.weight, rnn.weight_ih_l0.t()
            ).contiguous()
            weights = lambda name: [  # noqa: E731
                getattr(rnn, f"{name}_l{k}").detach().clone() for k in range(config.layers)
            ]
            self.w_ih, self.b_ih = weights("weight_ih"), weights("bias_ih")
            self.w_hh, self.b_hh = weights("weight_hh"), weights("bias_hh")
            self.head_w = model.head.weight.detach().t().contiguous()  # (H, V)
            self.head_b = model.head.bias.detach().clone()

    @torch.no_grad()
    def step(self, ids: Tensor, state: State) -> tuple[Tensor, State]:
        """ids (B,) -> logits (B, V) for the next character, and the new state."""
        layers = self.unstack(state)
        logits = self.step_layers(ids, layers)
        return logits, self.stack(layers)

    def unstack(self, state: State) -> list:
        """torch layout -> per-layer list of h (B, H), or of (h, c) for LSTM."""
        if self.cell == "lstm":
            return list(zip(state[0].unbind(0), state[1].unbind(0)))
        return list(state.unbind(0))

    def stack(self, layers: list) -> State:
        if self.cell == "lstm":
            return torch.stack([h for h, _ in layers]), torch.stack([c for _, c in layers])
        return torch.stack(layers)

    def step_layers(self, ids: Tensor, layers: list) -> Tensor:
        """Advance the per-layer state list in place; return logits (B, V)."""
        x = None
        for k in range(self.layers):
            if k == 0:
                xw = self.input_table[ids]  # (B, G*H)
            else:
                xw = torch.addmm(self.b_ih[k], x, self.w_ih[k].t())
            if self.cell == "lstm":
                layers[k] = lstm_step(xw, *layers[k], self.w_hh[k], self.b_hh[k])
                x = layers[k][0]
            else:
                step = gru_step if self.cell == "gru" else rnn_step
                layers[k] = x = step(xw, layers[k], self.w_hh[k], self.b_hh[k])
        return torch.addmm(self.head_b, x, self.head_w)  # (B, V)


def generate(
    model: CharRNN,
    vocab: Vocabulary,
    prime: str = "",
    settings: SampleConfig | None = None,
    threads: int | None = None,
) -> Iterator[list[str]]:
    """An iterator yielding, per step, the next character of each sample ("" once
    a sample stopped). The prime itself is not yielded. A sample stops after
    `settings.length` characters or right after it produced `settings.stop`.

    The prime is checked and fed before this returns, so errors surface here
    rather than at the first character. `threads` is how many BLAS threads the
    per-character step uses; None: the fastest count as timed while sampling
    (see blas_threads). `settings` default to SampleConfig(); a seed of None
    draws with seed 0.
    """
    settings = settings or SampleConfig()
    if threads is not None and threads < 1:
        raise CharRNNError("threads must be >= 1")
    length, stop, num_samples = settings.length, settings.stop, settings.num_samples
    seed = settings.seed or 0
    unknown = vocab.unknown_chars(prime)
    if unknown:
        raise UnknownCharactersError(unknown, where="prime")
    context = vocab.with_start(vocab.encode(prime)).tolist()
    if not context:  # no prime and no newline in the vocabulary: start anywhere
        context = [int(np.random.default_rng(seed).integers(len(vocab)))]
    model.eval()
    # A short prime is fed on one torch thread: after two, torch's second thread
    # kept a core busy for a while, and the thread timing below then measured
    # two BLAS threads as slower than one and sampled on one (1x512: 8,000-8,600
    # chars/s where two threads gave 9,500-10,400). Long primes keep the threads
    # (20,000 characters: 1.1-1.3 s with two, 2.0 s with one).
    short = len(context) <= SHORT_PRIME
    with torch.no_grad(), torch_threads(1 if short else torch.get_num_threads()):
        logits, state = model(torch.tensor([context]))  # feed the prime once
    decoder = Decoder(model)
    logits = np.repeat(logits[:, -1].numpy(), num_samples, axis=0)  # (S, V)
    layers = decoder.state_from_torch(state, copies=num_samples)
    choose = Chooser(settings.temperature, settings.top_k, settings.top_p, seed)
    return _decode(decoder, vocab, logits, layers, length, stop, choose, threads)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to `count` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _decode(decoder, vocab, logits, layers, length, stop, choose, threads) -> Iterator[list[str]]:
    counts = [threads] if threads else candidate_counts(min(usable_cores(), blas_thread_limit()))
    # The context restores the caller's BLAS thread counts when decoding ends.
    with threadpool_limits(limits=counts[0], user_api="blas"):
        tuner = ThreadTuner(counts, blas_thread_setter())
        yield from _decode_steps(decoder, vocab, logits, layers, length, stop, choose, tuner)


def _decode_steps(
    decoder, vocab, logits, layers, length, stop, choose, tuner
) -> Iterator[list[str]]:
    num_samples = logits.shape[0]
    done = [False] * num_samples
    tails = [""] * num_samples
    for _ in range(length):
        ids = choose(logits)
        chars = []
        for s, i in enumerate(ids.tolist()):
            if done[s]:
                chars.append("")
                continue
            char = vocab.chars[i]
            chars.append(char)
            if stop:
                tails[s] = (tails[s] + char)[-len(stop) :]
                done[s] = tails[s] == stop
        yield chars
        if all(done):
            return
        logits = tuner.run(decoder.step, ids, layers)


def sample_text(model: CharRNN, vocab: Vocabulary, prime: str = "", **settings) -> list[str]:
    """Convenience for Python callers: the prime plus each whole sample; `settings`
    are SampleConfig's fields (length, temperature, top_k, ...)."""
    config = SampleConfig(**settings)
    pieces = [[prime] for _ in range(config.num_samples)]
    for chars in generate(model, vocab, prime, config):
        for piece, char in zip(pieces, chars):
            piece.append(char)
    return ["".join(piece) for piece in pieces]
