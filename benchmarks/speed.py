"""Sampling and scoring speed of a model, in characters per second.

    python -m benchmarks.speed [--model PATH] [--hidden 512]

Without --model, times a randomly initialised 1xH LSTM (speed does not depend
on the weights). Sampling: 5,000 characters at batch 1 (with the default
thread count, which sampling times and picks as it runs, and with one and two
BLAS threads fixed) and with 32 samples side by side. Scoring: the
whole validation text, parallel streams and exact, next to its limit: the
forward pass's matrix-product FLOPs per character at the matmul peak measured
in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from charrnn.config import ModelConfig, SampleConfig
from charrnn.inference.sample import generate
from charrnn.inference.score import score_ids
from charrnn.model.modelfile import load_model
from charrnn.model.network import CharRNN
from charrnn.text.textfile import read_text
from charrnn.text.vocab import Vocabulary

from .common import TRAIN, VAL
from .throughput import matmul_peak


def timed(func, *args, **kwargs) -> float:
    began = time.perf_counter()
    result = func(*args, **kwargs)
    if hasattr(result, "__next__"):
        for _ in result:  # generators do their work when iterated
            pass
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: random 1xH LSTM)")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--length", type=int, default=5000)
    parser.add_argument("--val", type=Path, default=VAL, help="text to score")
    parser.add_argument("--prime", default="ROMEO:", help="prime of the samples")
    args = parser.parse_args(argv)

    val_text = read_text(args.val)
    if args.model:
        loaded = load_model(args.model)
        model, vocab = loaded.model, loaded.vocab
    else:
        vocab = Vocabulary.from_text(read_text(TRAIN) + val_text)
        torch.manual_seed(0)
        model = CharRNN(ModelConfig(vocab_size=len(vocab), cell=args.cell, hidden=args.hidden))
        model.eval()
    results = {
        "model": args.model or f"random {args.cell} 1x{args.hidden}",
        "threads": torch.get_num_threads(),
    }
    for samples, threads in ((1, None), (1, 1), (1, 2), (32, None), (32, 1)):
        settings = SampleConfig(length=args.length, num_samples=samples)
        seconds = timed(generate, model, vocab, args.prime, settings, threads=threads)
        name = f"sample_chars_per_s_batch{samples}" + (f"_threads{threads}" if threads else "")
        results[name] = round(samples * args.length / seconds)
    ids, _ = vocab.encode_known(val_text)
    for exact in (False, True):
        seconds = timed(score_ids, model, vocab, ids, exact=exact)
        results[f"score_chars_per_s_{'exact' if exact else 'parallel'}"] = round(len(ids) / seconds)
    peak, _ = matmul_peak()
    # Forward only: 2 FLOPs per multiply-add over every weight matrix but the embedding.
    weights = sum(p.numel() for n, p in model.named_parameters() if "weight" in n)
    flops_per_char = 2 * (weights - model.embedding.weight.numel())
    results["matmul_peak_gflop_per_s"] = round(peak / 1e9, 1)
    results["score_limit_chars_per_s"] = round(peak / flops_per_char)
    results["score_parallel_fraction_of_limit"] = round(
        results["score_chars_per_s_parallel"] * flops_per_char / peak, 3
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
