"""The network: embedding -> stacked RNN / LSTM / GRU -> linear to the vocabulary.

Pure torch: no files, no printing. `ModelConfig` is everything needed to
rebuild the module; it is stored in every model file.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig

# The recurrent state in torch's own layout: h (L, B, H) for rnn/gru,
# the pair (h, c) for lstm.
State = Tensor | tuple[Tensor, Tensor]


class CharRNN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        rnn_class = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[config.cell]
        self.embedding = nn.Embedding(config.vocab_size, config.embedding)
        self.rnn = rnn_class(
            config.embedding,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def forward(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """ids (B, T) int64 -> logits (B, T, V) and the state after the last step."""
        x = self.embedding(ids)  # (B, T, E)
        y, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.dropout(y)), state  # (B, T, V)

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
