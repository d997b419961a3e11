"""Training throughput per shape and precision, on one device or several processes,
and the validation loss after a fixed budget (the GPU rows of BENCHMARKS.md).

    python -m benchmarks.scale                      # GPU: 1x512 and 3x1024, fp32 and bf16
    python -m benchmarks.scale --quality 300        # ... then one 300 s run, val loss
    python -m benchmarks.scale --nproc 2            # the same under torchrun, 2 processes
    python -m benchmarks.scale --device cpu --shapes 1x128 --precisions fp32 --nproc 1 2

Each row is one `charrnn train` on the Shakespeare split (train.txt, val.txt);
chars/s is charrnn's own figure (validation time excluded), with --batch-size
the global batch (split over the processes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from .common import ROOT, TRAIN, VAL, run_json


def train_command(nproc: int, *args: str) -> list[str]:
    """`charrnn train ...`, under torchrun when nproc > 1."""
    if nproc == 1:
        return [sys.executable, "-m", "charrnn", "train", *args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "charrnn",
        "train",
        *args,
    ]


def run(nproc: int, seconds: float, options: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        args = [str(TRAIN), "--val-file", str(VAL), "--out", tmp, "-q", "--json"]
        env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}
        if nproc > 1 and not env["OMP_NUM_THREADS"]:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
        env = {k: v for k, v in env.items() if v}
        result, _ = run_json(
            train_command(nproc, *args, "--max-time", str(seconds), *options), env=env
        )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shapes", nargs="+", default=["1x512", "3x1024"], help="LAYERSxHIDDEN")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1])
    parser.add_argument("--batch-size", type=int, default=128, help="global batch")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0, help="per throughput row")
    parser.add_argument("--quality", type=float, default=0.0, help="seconds of the val-loss run")
    parser.add_argument(
        "--quality-args",
        default="--layers 3 --hidden 1024 --dropout 0.2 --lr 2e-3 --precision bf16",
        help="charrnn train options of the val-loss run (besides --device, --batch-size)",
    )
    args = parser.parse_args(argv)
    common = ["--device", args.device, "--batch-size", str(args.batch_size)]
    common += ["--seq-len", str(args.seq_len), "--eval-every", "0"]
    for nproc in args.nproc:
        for shape in args.shapes:
            layers, hidden = shape.split("x")
            for precision in args.precisions:
                options = [*common, "--layers", layers, "--hidden", hidden]
                result = run(nproc, args.seconds, [*options, "--precision", precision])
                row = {
                    "device": args.device,
                    "processes": nproc,
                    "shape": shape,
                    "precision": precision,
                    "batch": args.batch_size,
                    "seq_len": args.seq_len,
                    "seconds": args.seconds,
                    "chars_per_s": round(result["chars_per_s"]),
                    "steps": result["steps"],
                }
                print(json.dumps(row), flush=True)
    if args.quality > 0:
        options = [*common, *args.quality_args.split()]
        result = run(args.nproc[0], args.quality, options)
        row = {
            "device": args.device,
            "processes": args.nproc[0],
            "options": " ".join(options),
            "seconds": args.quality,
            "chars_per_s": round(result["chars_per_s"]),
            "best_val_nats": round(result["best_val_nats"], 4),
            "best_val_bpc": round(result["best_val_bpc"], 4),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
