"""Where the adaptive softmax starts to pay: training and sampling speed of the two
output layers as the alphabet grows, everything else fixed (1x384 LSTM, the
default embedding, batch 16 x 64).

    python -m benchmarks.output_layer [--seconds 4] [--vocab 84 300 1000 2673 6000]

Symbol frequencies follow a Zipf law (the k-th most frequent symbol has weight
1/k), so the adaptive head's cutoffs come out of the same rule a corpus would
give (config.adaptive_cutoffs). Training: forward, backward and an AdamW step
on random ids, the loss as the trainer computes it. Sampling: the numpy
decoder's batch-1 step followed by a draw at temperature 0.8. One JSON line per
(alphabet, output layer), with the adaptive/softmax speed ratio.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from charrnn.config import ModelConfig, SampleConfig
from charrnn.inference.decoder import Chooser, Decoder
from charrnn.model.network import CharRNN


def zipf_counts(vocab: int) -> list[int]:
    return [int(1e6 / (k + 1)) + 1 for k in range(vocab)]


def training_chars_per_s(model: CharRNN, seconds: float, batch=16, steps_len=64) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    # Ids drawn with the Zipf frequencies, so the clusters see the traffic a text gives.
    weights = torch.tensor(zipf_counts(vocab), dtype=torch.float64)
    order = model.head.order if hasattr(model.head, "order") else torch.arange(vocab)

    def batch_ids():
        ranks = torch.multinomial(weights, batch * (steps_len + 1), True, generator=generator)
        return order[ranks].view(batch, steps_len + 1)

    def step():
        ids = batch_ids()
        log_p, _ = model(ids[:, :-1], None, targets=ids[:, 1:])  # (B, T)
        loss = -log_p.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for _ in range(3):
        step()
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        step()
        count += 1
    return count * batch * steps_len / (time.perf_counter() - began)


def sampling_chars_per_s(model: CharRNN, seconds: float) -> float:
    decoder = Decoder.from_model(model)
    layers = decoder.zero_state()
    choose = Chooser(SampleConfig().temperature, seed=0)
    ids = np.zeros(1, dtype=np.int64)
    for _ in range(20):
        ids = choose(decoder.step(ids, layers))
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        ids = choose(decoder.step(ids, layers))
        count += 1
    return count / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--vocab", type=int, nargs="+", default=[84, 300, 1000, 2673, 6000])
    args = parser.parse_args(argv)
    for vocab in args.vocab:
        speeds = {}
        for output in ("softmax", "adaptive"):
            torch.manual_seed(0)
            counts = zipf_counts(vocab)
            config = ModelConfig(vocab_size=vocab, output=output).resolved(counts)
            order = None
            if output == "adaptive":
                order = sorted(range(vocab), key=lambda i: (-counts[i], i))
            model = CharRNN(config, order=order)
            train = training_chars_per_s(model, args.seconds)
            sample = sampling_chars_per_s(model, args.seconds)
            speeds[output] = (train, sample)
            print(
                json.dumps(
                    {
                        "vocab": vocab,
                        "output": output,
                        "cutoffs": list(config.cutoffs),
                        "parameters": config.parameter_count(),
                        "train_chars_per_s": round(train),
                        "sample_chars_per_s_batch1": round(sample),
                    }
                ),
                flush=True,
            )
        (train_a, sample_a), (train_s, sample_s) = speeds["adaptive"], speeds["softmax"]
        ratios = {
            "vocab": vocab,
            "train_adaptive_over_softmax": round(train_a / train_s, 3),
            "sample_adaptive_over_softmax": round(sample_a / sample_s, 3),
        }
        print(json.dumps(ratios), flush=True)


if __name__ == "__main__":
    main()
