"""Sampling: generate text one character at a time, O(1) work per character.

The numpy `decoder.Decoder` advances the state one character per step; the
next character is drawn from its logits (`Chooser`), or for an adaptive output
layer from the layer's factors (`ClusterDraw`). A short prime is read with it
too, so that sampling from a LoadedModel never imports torch (a second of
start-up); a long prime is run once through the fused torch model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from ..config import SampleConfig
from ..errors import CharRNNError, UnknownCharactersError
from ..model.modelfile import LoadedModel
from ..text.vocab import Vocabulary
from .blas_threads import (
    ThreadTuner,
    blas_thread_limit,
    blas_thread_setter,
    candidate_counts,
    usable_cores,
)
from .decoder import Chooser, ClusterDraw, Decoder, repeat_rows

if TYPE_CHECKING:
    from ..model.network import CharRNN, State

# Primes up to this many characters (with the start newline) are read by the numpy
# decoder on one BLAS thread: 1,000 characters of the bundled 1x384 LSTM took
# 0.06-0.14 s on the 2-core machine while other work ran on it. Longer primes go
# through the fused torch model on all its threads (20,000 characters: 1.9-2.9 s
# there, against 1.5-1.7 s in numpy, so the numpy path is no slower at that size).
SHORT_PRIME = 1000


def generate(
    model: CharRNN | LoadedModel,
    vocab: Vocabulary,
    prime: str = "",
    settings: SampleConfig | None = None,
    threads: int | None = None,
    start: State | None = None,
) -> Iterator[list[str]]:
    """An iterator yielding, per step, the next character of each sample ("" once
    a sample stopped). The prime itself is not yielded. A sample stops after
    `settings.length` characters or right after it produced `settings.stop`.
    `start`: the state to go on from (a batch-1 torch state, e.g. after a text the
    model adapted to), instead of the start of a text.

    `model` is a torch CharRNN or a LoadedModel; given a LoadedModel and a prime
    of at most SHORT_PRIME characters, torch is never imported. Both give the
    same text for the same seed. The prime is checked and read before this
    returns, so errors surface here rather than at the first character.
    `threads` is how many BLAS threads each step uses; None: one while reading
    the prime, then the fastest count as timed while sampling (see
    blas_threads). `settings` default to SampleConfig(); a seed of None draws
    with seed 0.
    """
    settings = settings or SampleConfig()
    if threads is not None and threads < 1:
        raise CharRNNError("threads must be >= 1")
    seed = settings.seed or 0
    if isinstance(model, LoadedModel):
        decoder = Decoder(model.config, model.weights)
    else:
        model.eval()
        decoder = Decoder.from_model(model)
    logits, layers = read_prime(model, decoder, vocab, prime, seed, threads, start)
    copies = settings.num_samples
    logits, layers = np.repeat(logits, copies, axis=0), repeat_rows(layers, copies)  # (S, V)
    if decoder.adaptive:
        # Drawn from the output layer's factors (ClusterDraw): no Gumbel noise for all V.
        choose = ClusterDraw(decoder, settings.temperature, settings.top_k, settings.top_p, seed)
        step, logits = decoder.advance, decoder.top(layers)
    else:
        choose, step = Chooser(settings.temperature, settings.top_k, settings.top_p, seed), None
    length, stop = settings.length, settings.stop
    return _decode(decoder, step, vocab, logits, layers, length, stop, choose, threads)


def read_prime(
    model: CharRNN | LoadedModel,
    decoder: Decoder,
    vocab: Vocabulary,
    prime: str,
    seed: int,
    threads: int | None = None,
    start: State | None = None,
) -> tuple[np.ndarray, list]:
    """The logits (1, V) after the prime and the batch-1 state: the prime is read from
    `start` when given (a torch state, left unchanged), else after the start newline.
    Read by the numpy decoder on `threads` BLAS threads (default one) up to SHORT_PRIME
    characters, else by the fused torch model. UnknownCharactersError for characters
    the model has never seen."""
    unknown = vocab.unknown_chars(prime)
    if unknown:
        raise UnknownCharactersError(unknown, where="prime")
    if start is not None:
        context = vocab.encode(prime)
        layers = decoder.state_from_torch(start)  # copies
    else:
        context, layers = vocab.with_start(vocab.encode(prime)), None
        if not len(context):  # no prime and no newline in the vocabulary: start anywhere
            context = np.array([np.random.default_rng(seed).integers(len(vocab))])
    if len(context) <= SHORT_PRIME:
        with threadpool_limits(limits=threads or 1, user_api="blas"):
            return decoder.read(context.tolist(), layers)
    torch_model = model.model if isinstance(model, LoadedModel) else model
    return _read_with_torch(torch_model, decoder, context, start)


def _read_with_torch(model: CharRNN, decoder: Decoder, context: np.ndarray, start=None):
    """The logits (1, V) after `context`, read from `start` (None: the zero state), and
    the decoder's state, from the fused model."""
    import torch

    with torch.no_grad():
        logits, state = model(torch.from_numpy(context)[None], start)  # (1, T, V)
    return logits[:, -1].numpy(), decoder.state_from_torch(state)


def _decode(
    decoder, step, vocab, logits, layers, length, stop, choose, threads
) -> Iterator[list[str]]:
    """`choose` picks ids from what `step` (default: decoder.step) returns, `logits`
    at first."""
    counts = [threads] if threads else candidate_counts(min(usable_cores(), blas_thread_limit()))
    # The context restores the caller's BLAS thread counts when decoding ends.
    with threadpool_limits(limits=counts[0], user_api="blas"):
        tuner = ThreadTuner(counts, blas_thread_setter())
        step = step or decoder.step
        yield from _decode_steps(step, vocab, logits, layers, length, stop, choose, tuner)


def _decode_steps(step, vocab, logits, layers, length, stop, choose, tuner) -> Iterator[list[str]]:
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
        logits = tuner.run(step, ids, layers)


def sample_text(
    model: CharRNN | LoadedModel,
    vocab: Vocabulary,
    prime: str = "",
    threads: int | None = None,
    **settings,
) -> list[str]:
    """Convenience for Python callers: the prime plus each whole sample; `settings`
    are SampleConfig's fields (length, temperature, top_k, ...)."""
    config = SampleConfig(**settings)
    pieces = [[prime] for _ in range(config.num_samples)]
    for chars in generate(model, vocab, prime, config, threads):
        for piece, char in zip(pieces, chars):
            piece.append(char)
    return ["".join(piece) for piece in pieces]
