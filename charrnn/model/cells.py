"""The textbook recurrences, one time step each, written out gate by gate.

These are the equations that torch's fused nn.RNN / nn.LSTM / nn.GRU compute
(tests check that they agree to float precision). They are the reference that
the fast numpy decoder is tested against, and what the analysis tools read the
gates from; readers can use them to see what a cell does.

Each step takes `xw`, the input's contribution W_ih x + b_ih already computed
(a matrix product done once per character), and the previous state: h, or the
pair (h, c) for LSTM. It returns the new state and the cell's gates by name
(layout.GATES). Weights are in torch's layout: W_hh is (G*H, H) with the gate blocks
stacked in torch's order. Shapes: xw (B, G*H); h, c and every gate (B, H).
"""

from __future__ import annotations

import torch
from torch import Tensor

CellState = Tensor | tuple[Tensor, Tensor]  # h, or (h, c) for LSTM


def rnn_step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor) -> tuple[Tensor, dict]:
    """Elman RNN: h_t = tanh(U x_t + W h_{t-1} + b).  (U x_t + b_ih arrives as xw.)
    No gates."""
    return torch.tanh(torch.addmm(xw + b_hh, h, w_hh.t())), {}


def lstm_step(
    xw: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, b_hh: Tensor
) -> tuple[tuple[Tensor, Tensor], dict[str, Tensor]]:
    """LSTM (gate order i, f, g, o as in torch):

    i = sigma(W_xi x + W_hi h + b_i)     input gate
    f = sigma(W_xf x + W_hf h + b_f)     forget gate
    g = tanh (W_xg x + W_hg h + b_g)     candidate cell
    o = sigma(W_xo x + W_ho h + b_o)     output gate
    c' = f * c + i * g                   cell state
    h' = o * tanh(c')                    hidden state
    """
    h, c = state
    i, f, g, o = torch.addmm(xw + b_hh, h, w_hh.t()).chunk(4, dim=1)  # (B, H) each
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return (h, c), {"i": i, "f": f, "g": g, "o": o}


def gru_step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor) -> tuple[Tensor, dict]:
    """GRU (gate order r, z, n as in torch):

    r = sigma(W_xr x + W_hr h + b_r)              reset gate
    z = sigma(W_xz x + W_hz h + b_z)              update gate
    n = tanh (W_xn x + b_xn + r * (W_hn h + b_hn)) candidate
    h' = (1 - z) * n + z * h
    """
    x_r, x_z, x_n = xw.chunk(3, dim=1)
    h_r, h_z, h_n = torch.addmm(b_hh, h, w_hh.t()).chunk(3, dim=1)  # (B, H) each
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, {"r": r, "z": z, "n": n}


STEPS = {"rnn": rnn_step, "lstm": lstm_step, "gru": gru_step}


def cell_step(
    cell: str, xw: Tensor, state: CellState, w_hh: Tensor, b_hh: Tensor
) -> tuple[CellState, dict[str, Tensor]]:
    """One step of `cell` ("rnn", "lstm" or "gru"): (the new state, its gates by name)."""
    return STEPS[cell](xw, state, w_hh, b_hh)
