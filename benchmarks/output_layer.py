"""Where the adaptive softmax starts to pay: training and sampling speed of the two
output layers as the alphabet grows, everything else fixed (1x384 LSTM, the
default embedding, batch 16 x 64).

    python -m benchmarks.output_layer [--seconds 4] [--vocab 84 300 1000 2673 6000]

Symbol frequencies follow a Zipf law (the k-th most frequent symbol has weight
1/k), so the adaptive head's cutoffs come out of the same rule a corpus would
give (model.layout.adaptive_cutoffs). Training: forward, backward and an AdamW step
on random ids, the loss as the trainer computes it. Sampling: the numpy
batch-1 `generate` at the default settings (temperature 0.8). One JSON line per
(alphabet, output layer), with the adaptive/softmax speed ratio.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from charrnn.config import ModelConfig, SampleConfig
from charrnn.inference.sample import generate
from charrnn.model.layout import parameter_count, resolve_output
from charrnn.model.network import CharRNN
from charrnn.text.vocab import Vocabulary


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
    """Batch-1 sampling at the default settings through `generate`, as `charrnn sample`
    does (for an adaptive model: drawn from the output layer's factors)."""
    # Any characters will do; the newline makes the usual start context.
    vocab = Vocabulary(("\n",) + tuple(chr(0x4E00 + i) for i in range(model.config.vocab_size - 1)))
    length, began = 500, time.perf_counter()
    for _ in generate(model, vocab, "", SampleConfig(length=length, seed=0)):
        pass
    length = max(500, int(length * seconds / (time.perf_counter() - began)))
    began = time.perf_counter()
    for _ in generate(model, vocab, "", SampleConfig(length=length, seed=1)):
        pass
    return length / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--vocab", type=int, nargs="+", default=[84, 300, 1000, 2673, 6000])
    args = parser.parse_args(argv)
    # All training first, then all sampling: numpy's BLAS threads keep spinning for a
    # while after sampling and would slow a training measured right after.
    models, rows = {}, {}
    for vocab in args.vocab:
        counts = zipf_counts(vocab)
        for output in ("softmax", "adaptive"):
            torch.manual_seed(0)
            config = resolve_output(ModelConfig(vocab_size=vocab, output=output), counts)
            order = None
            if output == "adaptive":
                order = sorted(range(vocab), key=lambda i: (-counts[i], i))
            model = models[vocab, output] = CharRNN(config, order=order)
            rows[vocab, output] = {
                "vocab": vocab,
                "output": output,
                "cutoffs": list(config.cutoffs),
                "parameters": parameter_count(config),
                "train_chars_per_s": round(training_chars_per_s(model, args.seconds)),
            }
    for key, model in models.items():
        rows[key]["sample_chars_per_s_batch1"] = round(sampling_chars_per_s(model, args.seconds))
    for vocab in args.vocab:
        softmax, adaptive = rows[vocab, "softmax"], rows[vocab, "adaptive"]
        print(json.dumps(softmax))
        print(json.dumps(adaptive))
        ratios = {
            "vocab": vocab,
            "train_adaptive_over_softmax": round(
                adaptive["train_chars_per_s"] / softmax["train_chars_per_s"], 3
            ),
            "sample_adaptive_over_softmax": round(
                adaptive["sample_chars_per_s_batch1"] / softmax["sample_chars_per_s_batch1"], 3
            ),
        }
        print(json.dumps(ratios), flush=True)


if __name__ == "__main__":
    main()
