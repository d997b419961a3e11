"""Batch-1 sampling speed of one model against another, interleaved in one process.

    python -m benchmarks.sample_ratio MODEL [--against data/shakespeare.safetensors] \
        [--rounds 7] [--length 4000] [--threads 1]

Sampling at batch 1 takes ~100 µs a character, so a background process or a
clock change moves single figures by 30% or more. Here the two models
alternate, `--rounds` times, each drawing `--length` characters at the
default settings (temperature 0.8, no prime) with `--threads` BLAS threads;
the figure is the ratio of the medians, with each model's median chars/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from charrnn.inference.sample import sample_text
from charrnn.model.modelfile import load_model

from .common import cpu_model


def chars_per_s(loaded, length: int, seed: int, threads: int) -> float:
    began = time.perf_counter()
    sample_text(loaded, loaded.vocab, "", threads=threads, length=length, seed=seed)
    return length / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--against", default="data/shakespeare.safetensors")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--length", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    models = {name: load_model(name) for name in (args.model, args.against)}
    speeds: dict[str, list[float]] = {name: [] for name in models}
    for loaded in models.values():  # a first draw each, not counted: caches, thread pools
        chars_per_s(loaded, 200, 0, args.threads)
    for round_ in range(args.rounds):
        for name, loaded in models.items():
            speeds[name].append(chars_per_s(loaded, args.length, round_ + 1, args.threads))
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    print(
        json.dumps(
            {
                "cpu": cpu_model(),
                "threads": args.threads,
                **{f"chars_per_s {name}": round(value) for name, value in medians.items()},
                "ratio": round(medians[args.model] / medians[args.against], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
