"""Training throughput at the reference shape (1x512 LSTM, batch 64, seq 64), same run:
plain_lstm.py, charrnn with the same shape (embedding 512), and charrnn with its own
64-wide embedding; model FLOP/s as a fraction of the sgemm peak measured here too,
and each training process's peak resident memory.

    python -m benchmarks.throughput [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from .common import TRAIN, VAL, charrnn, plain_lstm, run_measured

HIDDEN, VOCAB = 512, 84


def sgemm_peak(size: int = 2048, seconds: float = 3.0) -> float:
    """FLOP/s of float32 matrix products of size x size, at torch's thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - began)


def train_flops_per_char(embedding: int) -> float:
    """Matrix-product FLOPs per character of one training step: forward 2, backward 4
    per multiply-add, over the LSTM (4H x (E + H)) and output (V x H) weights."""
    return 6 * (4 * HIDDEN * (embedding + HIDDEN) + VOCAB * HIDDEN)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    peak = sgemm_peak()
    rows = [{"name": "sgemm 2048", "gflop_per_s": round(peak / 1e9, 1)}]
    plain, _, plain_rss = run_measured(plain_lstm(TRAIN, VAL, args.seconds))
    rows.append(
        {
            "name": "plain_lstm.py 1x512 B64 T64",
            "chars_per_s": plain["chars_per_s"],
            "flops_per_char": train_flops_per_char(HIDDEN),
            "peak_rss_mb": round(plain_rss),
        }
    )
    for embedding in (HIDDEN, 64):
        with tempfile.TemporaryDirectory() as tmp:
            result, _, rss = run_measured(
                charrnn(
                    "train",
                    str(TRAIN),
                    "--val",
                    str(VAL),
                    "--out",
                    tmp,
                    "-q",
                    "--json",
                    "--hidden",
                    str(HIDDEN),
                    "--batch-size",
                    "64",
                    "--seq-len",
                    "64",
                    "--embedding",
                    str(embedding),
                    "--max-time",
                    str(args.seconds),
                )
            )
        rows.append(
            {
                "name": f"charrnn 1x512 B64 T64 embedding {embedding}",
                "chars_per_s": round(result["chars_per_s"]),
                "flops_per_char": train_flops_per_char(embedding),
                "peak_rss_mb": round(rss),
            }
        )
    for row in rows[1:]:
        row["model_gflop_per_s"] = round(row["chars_per_s"] * row["flops_per_char"] / 1e9, 1)
        row["fraction_of_sgemm_peak"] = round(row["chars_per_s"] * row["flops_per_char"] / peak, 3)
        row["ratio_to_plain"] = round(row["chars_per_s"] / rows[1]["chars_per_s"], 3)
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
