"""A CharRNN's shape from its ModelConfig, without torch: the output layer decided
(`resolve_output`, the adaptive softmax's cutoffs), every weight's name and shape
(`weight_shapes`), and the parameter counts. The network is built to it, model
files and training states are checked against it, the numpy decoder reads it.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..config import ADAPTIVE_MIN_VOCAB, ModelConfig
from ..errors import CharRNNError

# Per cell: its gates, in torch's order. Each is a block of H rows in a layer's
# W_ih, W_hh and biases (an Elman RNN has no gate and one block, its pre-activation);
# a step of the textbook cells (cells.py) returns them by these names.
GATES = {
    "rnn": (),
    "lstm": ("i", "f", "g", "o"),
    "gru": ("r", "z", "n"),
}


def gate_blocks(cell: str) -> int:
    """The blocks of H rows in a layer's weights: one per gate (GATES), one without."""
    return len(GATES[cell]) or 1


# The output layer. A full softmax costs hidden x V per character; above a few
# thousand symbols that is most of every step (training, scoring, sampling). An
# adaptive softmax (Grave et al. 2017, torch.nn.AdaptiveLogSoftmaxWithLoss) puts
# the frequent symbols in a head, which also holds one logit per tail cluster,
# and the rare ones in tail clusters reached through narrower projections: its
# cost grows with the head and the projections, hardly with V.
# "auto" picks it from ADAPTIVE_MIN_VOCAB symbols (config.py: --output's help says so)
# for a text with at least this many training characters per symbol. On a
# small text the budget covers many passes anyway and rare symbols need the full
# softmax's rows: 90 s on the 300 Tang poems (10 characters per symbol) gave
# 4.8151 nats/char with the softmax, 4.9628 adaptive; on manpages-zh (1,812
# characters per symbol) 2.8638 with the softmax, 2.5103 adaptive (and 2x the speed).
ADAPTIVE_MIN_CHARS_PER_SYMBOL = 100
# The head: the most frequent symbols up to HEAD_SHARE of the training text
# (each character then usually needs the head alone), at least HEAD_MIN symbols
# (below that the clusters' overhead outweighs what they save), at most
# V * HEAD_MAX_FRACTION (the head's hidden x head product is the cost that remains).
# manpages-zh, 90 s, Zen 3: a head for 80% of the text (144 symbols) trained at 18,238
# chars/s to 2.4947 nats/char, one for 90% (318) at 17,233 to 2.5126 (BENCHMARKS.md).
HEAD_SHARE = 0.8
HEAD_MIN = 64
HEAD_MAX_FRACTION = 1 / 8
# Tail cluster k has CLUSTER_GROWTH**k times the head's size (the last one takes
# what is left) and a projection of hidden / PROJECTION_DIVISOR**k units: rarer
# symbols are seen less, so they get fewer dimensions (torch's div_value).
# (config.MAX_CLUSTERS bounds how many a file may declare.)
CLUSTER_GROWTH = 4
PROJECTION_DIVISOR = 4


def frequency_order(counts) -> list[int]:
    """Vocabulary ids from the most to the least frequent (ties: the lower id first),
    given each id's count in the training text."""
    return sorted(range(len(counts)), key=lambda i: (-counts[i], i))


def adaptive_cutoffs(counts) -> tuple[int, ...]:
    """The cluster boundaries, as frequency ranks, for an alphabet whose symbols occur
    `counts` times (in id order) in the training text: (head size, end of cluster 1,
    ...), each below V. See HEAD_SHARE, HEAD_MIN, HEAD_MAX_FRACTION, CLUSTER_GROWTH."""
    vocab = len(counts)
    if vocab < 2:
        raise CharRNNError("an adaptive softmax needs at least 2 characters")
    ranked = sorted(counts, reverse=True)
    total, covered, share_head = sum(ranked), 0, vocab
    for rank, count in enumerate(ranked, start=1):
        covered += count
        if total and covered >= HEAD_SHARE * total:
            share_head = rank
            break
    least = min(HEAD_MIN, vocab // 2)  # small alphabets forced into clusters: half in the head
    most = max(least, int(vocab * HEAD_MAX_FRACTION))
    head = max(1, min(max(share_head, least), most, vocab - 1))
    cutoffs, end, size = [head], head, head
    while True:
        size *= CLUSTER_GROWTH
        if end + size >= vocab:
            return tuple(cutoffs)
        end += size
        cutoffs.append(end)


def resolve_output(config: ModelConfig, counts=None) -> ModelConfig:
    """`config` with its output layer decided, as a model holds it: "auto" becomes
    "adaptive" from ADAPTIVE_MIN_VOCAB characters when the text (`counts`) has at
    least ADAPTIVE_MIN_CHARS_PER_SYMBOL characters per symbol, else "softmax"; an
    adaptive layer without cutoffs gets adaptive_cutoffs(counts). `counts`: each id's
    count in the training text (None: unknown, all equal)."""
    output = config.output
    if output == "auto":
        large = config.vocab_size >= ADAPTIVE_MIN_VOCAB
        text = sum(counts) if counts is not None else None
        enough = text is None or text >= ADAPTIVE_MIN_CHARS_PER_SYMBOL * config.vocab_size
        output = "adaptive" if large and enough else "softmax"
    if output == "softmax" or config.cutoffs:
        return replace(config, output=output)
    if config.vocab_size < 2:
        return replace(config, output="softmax")  # one character: nothing to cluster
    counts = [1] * config.vocab_size if counts is None else counts
    return replace(config, output=output, cutoffs=adaptive_cutoffs(counts))


def clusters(config: ModelConfig) -> list[tuple[int, int]]:
    """(size, projection width) of each tail cluster of an adaptive config."""
    bounds = (*config.cutoffs, config.vocab_size)
    return [
        (end - begin, max(1, config.hidden // PROJECTION_DIVISOR ** (k + 1)))
        for k, (begin, end) in enumerate(zip(bounds, bounds[1:]))
    ]


# The weights' names: CharRNN.state_dict()'s, which are torch's (nn.Embedding,
# nn.RNN / LSTM / GRU, nn.Linear, AdaptiveLogSoftmaxWithLoss's layout with a head bias).
EMBEDDING = "embedding.weight"
ORDER = "head.order"  # the adaptive head's rank -> id permutation, int64; not a weight


def layer_weights(k: int) -> tuple[str, str, str, str]:
    """Recurrent layer k's W_ih (G*H, inputs), W_hh (G*H, H), b_ih and b_hh (G*H,)."""
    return (f"rnn.weight_ih_l{k}", f"rnn.weight_hh_l{k}", f"rnn.bias_ih_l{k}", f"rnn.bias_hh_l{k}")


def head_weights(config: ModelConfig) -> tuple[str, str]:
    """The output layer's first product: its weight and bias (of the full softmax, or
    of the adaptive head: frequent symbols, then one logit per cluster)."""
    if config.output == "adaptive":
        return "head.head.weight", "head.head.bias"
    return "head.weight", "head.bias"


def cluster_weights(k: int) -> tuple[str, str]:
    """Tail cluster k's projection (P_k, H) and output (size_k, P_k), without biases."""
    return f"head.tail.{k}.0.weight", f"head.tail.{k}.1.weight"


def decayed_weights(config: ModelConfig, scope: str) -> tuple[str, ...]:
    """The weights that weight decay reaches (TrainConfig.weight_decay_on):

    - "recurrent": the recurrent layers' matrices W_ih and W_hh, the ones that can
      memorise (memorising_parameter_count). Not the biases, which set a baseline (a
      gate's, a symbol's log-frequency), nor the embedding and the output layer, whose
      rows for a large alphabet's rare symbols get few gradients, and decay would pull
      them towards zero in between;
    - "all": every weight, as GPT-style training decays them (weight_shapes but an
      adaptive head's ORDER buffer).
    """
    if scope == "all":
        return tuple(name for name in weight_shapes(config) if name != ORDER)
    return tuple(name for k in range(config.layers) for name in layer_weights(k)[:2])


def recurrent_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The names and shapes of the recurrent layers' weights."""
    rows, hidden = gate_blocks(config.cell) * config.hidden, config.hidden
    shapes = {}
    for k in range(config.layers):
        w_ih, w_hh, b_ih, b_hh = layer_weights(k)
        shapes[w_ih] = (rows, config.embedding if k == 0 else hidden)
        shapes[w_hh] = (rows, hidden)
        shapes[b_ih] = shapes[b_hh] = (rows,)
    return shapes


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The names and shapes of a CharRNN's state_dict, from its config (resolved here):
    the embedding, the recurrent layers, the output layer (and an adaptive head's
    ORDER, an int64 buffer)."""
    config = resolve_output(config)
    shapes = {EMBEDDING: (config.vocab_size, config.embedding), **recurrent_shapes(config)}
    weight, bias = head_weights(config)
    if config.output == "softmax":
        shapes[weight], shapes[bias] = (config.vocab_size, config.hidden), (config.vocab_size,)
        return shapes
    tails = clusters(config)
    head = config.cutoffs[0] + len(tails)
    shapes[weight], shapes[bias] = (head, config.hidden), (head,)
    for k, (size, width) in enumerate(tails):
        projection, output = cluster_weights(k)
        shapes[projection], shapes[output] = (width, config.hidden), (size, width)
    shapes[ORDER] = (config.vocab_size,)
    return shapes


def _count(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(shape) for name, shape in shapes.items() if name != ORDER)


def parameter_count(config: ModelConfig) -> int:
    """Number of weights of the CharRNN this config builds (no torch needed)."""
    return _count(weight_shapes(config))


def memorising_parameter_count(config: ModelConfig) -> int:
    """The weights that can learn a text by heart: the recurrent layers', which carry
    context from one character to the next. The embedding and the output layer are
    one row per symbol of the alphabet (a large alphabet makes them large without
    letting the model remember more of the text), so they are left out."""
    return _count(recurrent_shapes(config))
