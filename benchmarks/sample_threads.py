"""Batch-1 sampling speed with the thread count timed while sampling (the default)
against one and two BLAS threads fixed, alternating the settings in one process.

    python -m benchmarks.sample_threads [--repeats 3] [--busy 2]

--busy N starts N processes that keep a core busy each (a pure Python loop),
to see each setting on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from charrnn.config import ModelConfig, SampleConfig
from charrnn.inference.sample import generate
from charrnn.model.network import CharRNN
from charrnn.text.textfile import read_text
from charrnn.text.vocab import Vocabulary

from .common import VAL
from .speed import timed

SETTINGS = {"timed": None, "threads1": 1, "threads2": 2}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--length", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside the sampler")
    args = parser.parse_args(argv)

    vocab = Vocabulary.from_text(read_text(VAL))
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), hidden=args.hidden))
    model.eval()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    results = {name: [] for name in SETTINGS}
    time.sleep(1.0 if busy else 0.0)  # let the busy processes start before timing
    try:
        for _ in range(args.repeats):
            for name, threads in SETTINGS.items():
                if busy and threads == 2:
                    continue  # measured below 333 chars/s: minutes per repeat
                settings = SampleConfig(length=args.length)
                seconds = timed(generate, model, vocab, "ROMEO:", settings, threads=threads)
                results[name].append(round(args.length / seconds))
    finally:
        for process in busy:
            process.kill()
    print(json.dumps({"hidden": args.hidden, "busy": args.busy, "chars_per_s": results}))


if __name__ == "__main__":
    main()
