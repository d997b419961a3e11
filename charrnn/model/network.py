"""The network: embedding -> stacked RNN / LSTM / GRU -> an output layer over the
vocabulary, a full softmax (`SoftmaxHead`) or an adaptive one (`AdaptiveHead`).

Pure torch: no files, no printing. `ModelConfig` is everything needed to
rebuild the module; it is stored in every model file (with the adaptive head's
frequency order, a buffer).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..config import ModelConfig
from .layout import clusters, resolve_output, weight_shapes

# The recurrent state in torch's own layout: h (L, B, H) for rnn/gru,
# the pair (h, c) for lstm.
State = Tensor | tuple[Tensor, Tensor]


def widened(x: Tensor) -> Tensor:
    """`x` in float32 at least. Under bf16 autocast the output layer's products are
    bf16, and a log-softmax in bf16 is off by ~1e-2: normalising is done wider."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


DROPOUT_DRAWS = 1 << 16  # a dropout mask's draws: 16-bit, four to a 64-bit random word


class Dropout(nn.Module):
    """Inverted dropout, as nn.Dropout, with a cheaper mask: each 64-bit random word
    gives four 16-bit draws where nn.Dropout draws one random number per element.
    Measured (AMD EPYC Zen 4, 2 cores, bf16, a (32, 64, 640) batch of features):
    forward and backward 3.8-5.1 ms against nn.Dropout's 9.5-9.6 ms, in a training
    step of about 105 ms (whose own noise hides the difference; BENCHMARKS.md). The
    rate is p rounded to a multiple of 1/DROPOUT_DRAWS."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.cut = round(p * DROPOUT_DRAWS)  # of DROPOUT_DRAWS equally likely draws, dropped

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.cut == 0:
            return x
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
        words.random_(-(1 << 63), None)  # every 64-bit pattern equally likely
        draws = words.view(torch.int16)[:n].view(x.shape)  # uniform on [-2**15, 2**15)
        keep = draws >= self.cut - DROPOUT_DRAWS // 2
        return torch.where(keep, x * (DROPOUT_DRAWS / (DROPOUT_DRAWS - self.cut)), 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SoftmaxHead(nn.Linear):
    """hidden -> V logits; the distribution is their softmax. Its parameters are a
    Linear's (head.weight (V, H), head.bias (V,))."""

    def __init__(self, config: ModelConfig):
        super().__init__(config.hidden, config.vocab_size)

    def logits(self, h: Tensor) -> Tensor:
        """h (..., H) -> (..., V) unnormalised logits, in vocabulary-id order."""
        return self(h)

    def log_probs(self, h: Tensor) -> Tensor:
        """h (..., H) -> (..., V) log-probabilities, in vocabulary-id order."""
        return F.log_softmax(widened(self(h)), dim=-1)

    def target_log_probs(self, h: Tensor, targets: Tensor) -> Tensor:
        """h (..., H), targets (...) ids -> (...) log p(target)."""
        return -F.cross_entropy(self(h).flatten(0, -2), targets.flatten(), reduction="none").view(
            targets.shape
        )


class AdaptiveHead(nn.Module):
    """An adaptive softmax: an exact, normalised distribution over V symbols whose
    cost grows with the head and the projections rather than with V.

    Symbols are ranked by frequency (`order`: rank -> id, a buffer saved with the
    weights). Ranks below cutoffs[0] are in the head; the head also has one logit
    per tail cluster k, holding ranks cutoffs[k]..cutoffs[k+1] (or V) behind a
    projection to a narrower width (layout.clusters):
        log p(s) = log softmax(head(h))[s]                       s in the head
        log p(s) = log softmax(head(h))[H0 + k]                  s in cluster k
                   + log softmax(tail[k](h))[rank(s) - cutoffs[k]]
    The weights are laid out as torch.nn.AdaptiveLogSoftmaxWithLoss's with a head
    bias (head.weight, head.bias, tail.k.0.weight, tail.k.1.weight).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.cutoffs = list(config.cutoffs)
        self.shortlist = config.cutoffs[0]
        tails = clusters(config)
        self.head = nn.Linear(config.hidden, self.shortlist + len(tails))
        self.tail = nn.ModuleList(
            nn.Sequential(
                nn.Linear(config.hidden, width, bias=False), nn.Linear(width, size, bias=False)
            )
            for size, width in tails
        )
        self.register_buffer("order", torch.arange(config.vocab_size))  # rank -> id

    def set_order(self, order) -> None:
        """Rank symbols by `order` (rank -> id, a permutation of the vocabulary ids)."""
        order = torch.as_tensor(order, dtype=torch.int64)
        if order.shape != self.order.shape or not torch.equal(
            order.sort().values, torch.arange(len(order))
        ):
            raise ValueError("order must be a permutation of the vocabulary ids")
        self.order.copy_(order)

    def ranks(self) -> Tensor:
        """(V,) id -> rank: the inverse of `order`."""
        return torch.argsort(self.order)

    def logits(self, h: Tensor) -> Tensor:
        """The log-probabilities: valid logits (their softmax is the distribution)."""
        return self.log_probs(h)

    def log_probs(self, h: Tensor) -> Tensor:
        """h (..., H) -> (..., V) log-probabilities, in vocabulary-id order."""
        head = F.log_softmax(widened(self.head(h)), dim=-1)  # (..., H0 + clusters)
        parts = [head[..., : self.shortlist]]
        for k, cluster in enumerate(self.tail):
            within = F.log_softmax(widened(cluster(h)), dim=-1)  # (..., size_k)
            parts.append(within + head[..., self.shortlist + k, None])
        ranked = torch.cat(parts, dim=-1)  # (..., V) in rank order
        return ranked.index_select(-1, self.ranks())

    def target_log_probs(self, h: Tensor, targets: Tensor) -> Tensor:
        """h (..., H), targets (...) ids -> (...) log p(target). Each tail cluster runs
        only on the rows whose target is in it (on none, it still runs, on zero rows,
        so that every parameter takes part in each step, as DDP requires)."""
        shape = targets.shape
        h, rank = h.flatten(0, -2), self.ranks()[targets.flatten()]  # (N, H), (N,)
        bounds = torch.tensor(self.cutoffs, device=rank.device)
        cluster = torch.bucketize(rank, bounds, right=True)  # (N,) 0: head, k+1: cluster k
        column = torch.where(cluster == 0, rank, self.shortlist + cluster - 1)
        out = F.log_softmax(widened(self.head(h)), dim=-1).gather(1, column[:, None])[:, 0]
        for k, tail in enumerate(self.tail):
            rows = (cluster == k + 1).nonzero()[:, 0]
            within = F.log_softmax(widened(tail(h[rows])), dim=-1)  # (n_k, size_k)
            picked = within.gather(1, (rank[rows] - self.cutoffs[k])[:, None])[:, 0]
            out = out.index_add(0, rows, picked)
        return out.view(shape)


class CharRNN(nn.Module):
    def __init__(self, config: ModelConfig, order=None):
        """`config` is resolved here (layout.resolve_output: "auto" by alphabet size);
        `order` ranks the symbols of an adaptive head (default: by id). The weights
        are layout.weight_shapes(config), checked here."""
        super().__init__()
        self.config = config = resolve_output(config)
        rnn_class = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[config.cell]
        self.embedding = nn.Embedding(config.vocab_size, config.embedding)
        self.rnn = rnn_class(
            config.embedding,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = Dropout(config.dropout)
        self.head = SoftmaxHead(config) if config.output == "softmax" else AdaptiveHead(config)
        if order is not None:
            if config.output != "adaptive":
                raise ValueError("only an adaptive head ranks its symbols")
            self.head.set_order(order)
        built = {name: tuple(value.shape) for name, value in self.state_dict().items()}
        if built != weight_shapes(config):
            raise AssertionError(f"CharRNN's weights are not layout.weight_shapes': {built}")

    def features(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """ids (B, T) int64 -> what the output layer reads, (B, T, H), and the state
        after the last step."""
        x = self.embedding(ids)  # (B, T, E)
        y, state = self.rnn(x, state)  # (B, T, H)
        return self.dropout(y), state

    def forward(
        self, ids: Tensor, state: State | None = None, targets: Tensor | None = None
    ) -> tuple[Tensor, State]:
        """ids (B, T) int64 -> logits (B, T, V) and the state after the last step.

        With targets (B, T) ids: log p(target) (B, T) instead of the logits (for an
        adaptive head, without computing all V). The logits are raw for the softmax
        head, log-probabilities for the adaptive one: softmax them either way.
        """
        h, state = self.features(ids, state)  # (B, T, H)
        if targets is not None:
            return self.head.target_log_probs(h, targets), state  # (B, T)
        return self.head.logits(h), state  # (B, T, V)

    def log_probs(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """ids (B, T) -> the exact log-distribution (B, T, V) after each, and the state."""
        h, state = self.features(ids, state)
        return self.head.log_probs(h), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def detach_state(state: State | None) -> State | None:
    """Cut the graph at a batch boundary (truncated BPTT) but keep the values.

    Without this, backward would run through every batch since the start.
    """
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def select_state(state: State, rows: Tensor | slice) -> State:
    """The state of a subset of the batch (batch is dim 1 in torch's layout)."""
    if isinstance(state, tuple):
        return tuple(s[:, rows] for s in state)
    return state[:, rows]


def state_parts(state: State) -> tuple[Tensor, ...]:
    """The tensors of a state: (h,) for rnn/gru, (h, c) for lstm."""
    return state if isinstance(state, tuple) else (state,)


def float32_state(state: State | None) -> State | None:
    """`state` in float32 (autocast may return a bf16 state): what is carried between
    batches and saved in training states, whatever the precision."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.float() for s in state)
    return state.float()
