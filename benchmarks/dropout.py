"""The cost of dropout in a training step: torch's nn.Dropout against charrnn's
(model/network.py, `Dropout`: four 16-bit draws from each 64-bit random word).

    python -m benchmarks.dropout [--hidden 640] [--batch 32] [--p 0.1] [--repeats 20]

Times, in the run's precision (bf16 autocast where the CPU has native bfloat16):
forward and backward of each dropout alone on a (batch, 64, hidden) tensor of
features, then whole training steps of a 1-layer LSTM (random ids, 84 symbols, AdamW)
without dropout, with nn.Dropout on its features and with charrnn's. One JSON line
per measurement on stdout; the CPU model and a table on stderr. Run it alone on an
idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch import nn

from charrnn.config import ModelConfig
from charrnn.model.network import CharRNN, Dropout
from charrnn.training.precision import cpu_bfloat16
from charrnn.training.runtime import Runtime
from charrnn.training.trainer import training_loss

from .common import cpu_model

SEQ_LEN = 64
VOCAB = 84


def milliseconds(step, repeats: int) -> float:
    """The mean time of `step` in ms, after 3 untimed calls."""
    for _ in range(3):
        step()
    began = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - began) / repeats * 1000


def dropout_alone(dropout: nn.Module, args, bf16: bool) -> float:
    shape = (args.batch, SEQ_LEN, args.hidden)
    dtype = torch.bfloat16 if bf16 else torch.float32  # the LSTM's output under autocast
    features = torch.randn(shape, dtype=dtype, requires_grad=True)
    grad = torch.randn(shape, dtype=dtype)
    dropout.train()
    return milliseconds(lambda: dropout(features).backward(grad), args.repeats)


def training_step(p: float, dropout: nn.Module | None, args, bf16: bool) -> float:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=VOCAB, hidden=args.hidden, dropout=p))
    if dropout is not None:
        model.dropout = dropout
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    ids = torch.randint(0, VOCAB, (args.batch, SEQ_LEN + 1))
    x, y = ids[:, :-1], ids[:, 1:]
    runtime = Runtime(precision="bf16" if bf16 else "fp32")  # the trainer's autocast

    def step() -> None:
        with runtime.autocast():
            loss, _ = training_loss(model, model.config.output, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()

    return milliseconds(step, args.repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    bf16 = cpu_bfloat16().native
    rows = [
        ("nn.Dropout alone", dropout_alone(nn.Dropout(args.p), args, bf16)),
        ("charrnn Dropout alone", dropout_alone(Dropout(args.p), args, bf16)),
        ("step, no dropout", training_step(0.0, None, args, bf16)),
        ("step, nn.Dropout", training_step(args.p, nn.Dropout(args.p), args, bf16)),
        ("step, charrnn Dropout", training_step(args.p, None, args, bf16)),
    ]
    print(f"CPU: {cpu_model()}; {'bf16' if bf16 else 'fp32'}", file=sys.stderr)
    print(f"hidden {args.hidden}, batch {args.batch}, p {args.p}", file=sys.stderr)
    for name, ms in rows:
        chars = f"{args.batch * SEQ_LEN / ms * 1000:>9,.0f} chars/s" if "step" in name else ""
        print(f"{name:<24} {ms:7.1f} ms {chars}", file=sys.stderr)
        row = {"measure": name, "ms": round(ms, 2), "precision": "bf16" if bf16 else "fp32"}
        print(json.dumps(row))


if __name__ == "__main__":
    main()
