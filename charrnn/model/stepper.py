"""A whole CharRNN one character at a time, with the textbook cells of `cells`.

The readable reference for the network's step: the numpy decoder of the
sampler is tested against it, and the analysis tools read each layer's gates
from it. Slow (torch's per-call cost at every operation) and never on a hot path.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from .cells import CellState, cell_step
from .layout import EMBEDDING, layer_weights
from .network import CharRNN


class Stepper:
    """Steps B streams of a CharRNN. The state is a list, per layer, of h (B, H),
    or of the pair (h, c) for LSTM."""

    def __init__(self, model: CharRNN):
        config = model.config
        self.cell, self.layers, self.hidden = config.cell, config.layers, config.hidden
        with torch.no_grad():
            weight = lambda name: model.get_parameter(name).detach().clone()  # noqa: E731
            layers = [tuple(map(weight, layer_weights(k))) for k in range(config.layers)]
            self.w_ih, self.w_hh, self.b_ih, self.b_hh = map(list, zip(*layers))
            # Layer 0's input is an embedding row, so W_ih x + b_ih is a per-character
            # table: (V, G*H). One row lookup replaces a matrix product per step.
            self.input_table = torch.addmm(self.b_ih[0], weight(EMBEDDING), self.w_ih[0].t())
            self.head = copy.deepcopy(model.head).eval()  # the output layer, as it is now

    def zero_state(self, batch: int = 1) -> list[CellState]:
        """The state before any character, as CharRNN.forward starts from."""
        zeros = lambda: torch.zeros(batch, self.hidden)  # noqa: E731
        return [(zeros(), zeros()) if self.cell == "lstm" else zeros() for _ in range(self.layers)]

    def layer_step(
        self, k: int, x: Tensor, state: CellState
    ) -> tuple[CellState, dict[str, Tensor]]:
        """Layer k's cell, one step: x is the character ids (B,) for layer 0, else the
        layer below's h (B, H); returns its new state and gates. Differentiable in x
        (k > 0) and the state, which is what the gradient analysis takes apart."""
        if k == 0:
            xw = self.input_table[x]  # (B, G*H)
        else:
            xw = torch.addmm(self.b_ih[k], x, self.w_ih[k].t())  # (B, G*H)
        return cell_step(self.cell, xw, state, self.w_hh[k], self.b_hh[k])

    @torch.no_grad()
    def step(self, ids: Tensor, layers: list[CellState]) -> tuple[Tensor, list[dict[str, Tensor]]]:
        """ids (B,) -> logits (B, V) for the next character (as CharRNN.forward's), and
        each layer's gates while reading ids; `layers` is advanced in place (its
        entries replaced)."""
        gates, x = [], ids
        for k in range(self.layers):
            layers[k], layer_gates = self.layer_step(k, x, layers[k])
            x = output_of(layers[k])  # (B, H)
            gates.append(layer_gates)
        return self.head.logits(x), gates  # (B, V)


def output_of(state: CellState) -> Tensor:
    """What a layer passes up (and to the output layer): h, also for the LSTM's (h, c)."""
    return state[0] if isinstance(state, tuple) else state
