"""Training throughput at the reference shape (1x512 LSTM, batch 64, seq 64), same run:
plain_lstm.py, charrnn with the same shape (embedding 512), and charrnn with its own
64-wide embedding; model FLOP/s as a fraction of the fastest matrix product measured
here too (matmul_peak) and of the CPU's FMA limit, and each training process's peak
resident memory.

    python -m benchmarks.throughput [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .common import TRAIN, VAL, charrnn, plain_lstm, run_measured

HIDDEN, VOCAB = 512, 84


def _best_rate(product, size: int, repeats: int, seconds: float) -> float:
    """Best FLOP/s of `product()` (one size x size x size float32 product) over `repeats`
    timings of about `seconds` each, after one untimed call."""
    product()
    best = 0.0
    for _ in range(repeats):
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            product()
            count += 1
        best = max(best, 2 * size**3 * count / (time.perf_counter() - began))
    return best


def matmul_peak(sizes=(1024, 2048, 4096), repeats=3, seconds=1.0) -> tuple[float, str]:
    """The fastest float32 matrix product measured here: (FLOP/s, which one).

    Several sizes, both BLAS libraries at hand (torch's, and numpy's OpenBLAS: on
    AMD CPUs torch's MKL can take a narrower code path than OpenBLAS or oneDNN,
    whose fused LSTM then measured above a torch-only "peak"), all threads, the
    best of several timings each: a reference a well-tuned kernel can reach.
    """

    best, which = 0.0, ""
    for size in sizes:
        a, b = torch.randn(size, size), torch.randn(size, size)
        x, y = a.numpy(), b.numpy()
        products = (("torch", partial(torch.mm, a, b)), ("numpy", partial(np.matmul, x, y)))
        for name, product in products:
            rate = _best_rate(product, size, repeats, seconds)
            if rate > best:
                best, which = rate, f"{name} {size}"
    return best, which


def fma_limit() -> tuple[float, str]:
    """The CPU's float32 FMA limit as the kernel reports it: cores x MHz x FLOPs per
    cycle (two FMA units, each 8 lanes with AVX2 or 16 with AVX-512: 32 or 64 FLOPs).
    Boost clocks above the reported MHz can exceed it."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M)]
    flags = set(re.search(r"^flags\s*:(.*)$", info, re.M).group(1).split()) if info else set()
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 16
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count())
    limit = len(cores) * (max(mhz) if mhz else 0.0) * 1e6 * per_cycle
    return limit, f"{len(cores)} cores x {max(mhz, default=0):.0f} MHz x {per_cycle} FLOP/cycle"


def train_flops_per_char(embedding: int) -> float:
    """Matrix-product FLOPs per character of one training step: forward 2, backward 4
    per multiply-add, over the LSTM (4H x (E + H)) and output (V x H) weights."""
    return 6 * (4 * HIDDEN * (embedding + HIDDEN) + VOCAB * HIDDEN)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    peak, which = matmul_peak()
    limit, how = fma_limit()
    rows = [
        {"name": f"matmul peak ({which})", "gflop_per_s": round(peak / 1e9, 1)},
        {"name": f"FMA limit ({how})", "gflop_per_s": round(limit / 1e9, 1)},
    ]
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
                    "--val-file",
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
    plain_speed = rows[2]["chars_per_s"]
    for row in rows[2:]:
        flops = row["chars_per_s"] * row["flops_per_char"]
        row["model_gflop_per_s"] = round(flops / 1e9, 1)
        row["fraction_of_matmul_peak"] = round(flops / peak, 3)
        row["fraction_of_fma_limit"] = round(flops / limit, 3) if limit else None
        row["ratio_to_plain"] = round(row["chars_per_s"] / plain_speed, 3)
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
