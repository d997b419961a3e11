"""The default precision against float32, and both against plain_lstm.py, in one run.

    python -m benchmarks.precision --seconds 90 [--train T --val V] [--no-plain] \
        [-- extra charrnn train options]

First a line on this CPU: its model, the flags that matter for bfloat16, and what
`--precision auto` chooses here and why (charrnn.training.precision). Then, one
after the other for the same time on the same data: plain_lstm.py (unless
--no-plain), `charrnn train` with the default precision, `charrnn train
--precision fp32`; each scored on VAL in float32 (benchmarks.quality's rows).
Last, the ratios: the default's chars/s over float32's, its validation nats minus
float32's, and each charrnn row's speed and loss against plain_lstm.py. Where
auto chooses float32 the two charrnn rows run the same thing: their difference is
this machine's noise.

    python -m benchmarks.precision --equal-steps N [--cell rnn] [--train T --val V]

trains the same model (the defaults, with --cell) for N steps in float32 and
then in bf16 autocast, whatever this CPU has (emulated where it is not native:
slower, and oneDNN's LSTM refuses it, so the vanilla RNN or the GRU there), and
prints the validation nats of each after the same updates: what bf16's rounding
costs, apart from its speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from charrnn.training.precision import BF16_CPU_FLAGS, CpuFacts, choose_precision

from .common import cpu_model, plain_lstm, run_json
from .quality import charrnn_row, run_arguments

SHOWN_FLAGS = ("avx2", "avx512f", *BF16_CPU_FLAGS, "amx_tile")


def machine_line() -> dict:
    facts = CpuFacts.read()
    chosen = choose_precision("auto", torch.device("cpu"))
    return {
        "cpu": cpu_model(),
        "flags": [flag for flag in SHOWN_FLAGS if flag in facts.flags],
        "torch": torch.__version__,
        "auto_chooses": chosen.precision,
        "because": chosen.bf16.evidence,
    }


def equal_steps(train: Path, val: Path, steps: int, cell: str) -> None:
    """float32 and bf16 autocast for the same `steps` updates, one after the other."""
    from charrnn.config import DataConfig, TrainConfig
    from charrnn.training.runtime import Runtime
    from charrnn.training.session import start_run

    rows = []
    for precision in ("fp32", "bf16"):
        with tempfile.TemporaryDirectory() as out:
            result = start_run(
                train,
                out,
                data=DataConfig(val_file=str(val)),
                model={"cell": cell},
                train=TrainConfig(max_time=0, max_steps=steps, eval_every=steps),
                runtime=Runtime(torch.device("cpu"), precision),
            ).run()
        rows.append({"precision": precision, "cell": cell, "steps": result.steps,
                     "val_nats": round(result.last_val_nats, 4),
                     "chars_per_s": round(result.chars_per_s)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    print(
        json.dumps(
            {"val_nats_bf16_minus_fp32": round(rows[1]["val_nats"] - rows[0]["val_nats"], 4)}
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    run_arguments(parser)
    parser.add_argument("--equal-steps", type=int, help="bf16 against fp32 after N updates")
    parser.add_argument("--cell", default="rnn", help="--equal-steps: the cell")
    parser.add_argument("train_args", nargs="*", help="extra `charrnn train` options")
    args = parser.parse_args(argv)

    print(json.dumps(machine_line()), flush=True)
    if args.equal_steps:
        equal_steps(args.train, args.val, args.equal_steps, args.cell)
        return
    plain = None
    if not args.no_plain:
        plain, _ = run_json(plain_lstm(args.train, args.val, args.seconds))
        print(json.dumps({"name": "plain_lstm.py", **plain}), flush=True)
    rows = []
    for extra in ([], ["--precision", "fp32"]):
        rows.append(charrnn_row(args.train, args.val, args.seconds, [*args.train_args, *extra]))
        print(json.dumps(rows[-1]), flush=True)
    default, fp32 = rows
    summary = {
        "default_precision": default["precision"],
        "speed_default_over_fp32": round(default["chars_per_s"] / fp32["chars_per_s"], 3),
        "val_nats_default_minus_fp32": round(default["val_nats"] - fp32["val_nats"], 4),
    }
    if plain is not None:
        for name, row in (("default", default), ("fp32", fp32)):
            summary[f"speed_{name}_over_plain"] = round(
                row["chars_per_s"] / plain["chars_per_s"], 3
            )
            summary[f"val_nats_{name}_over_plain"] = round(row["val_nats"] / plain["val_nats"], 4)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
