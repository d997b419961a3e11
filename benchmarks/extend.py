"""Extending a finished run: which peak learning rate should the extension start from?

    python -m benchmarks.extend [--seconds 60] [--corpus shakespeare] [--corpus psalms]

Per corpus: one `charrnn train --max-time T` run; then, each from a copy of that
finished run directory, an extension by T more seconds (`--resume RUN --max-time T`)
with its learning-rate segment peaking at lr x ratio for each ratio (1.0, 0.3, and
final_lr_ratio: the finished run's final learning rate held constant after the
warm-up); against one straight run of 2T. Prints the CPU, then one JSON line per
run with the best validation loss from its `--json` summary (the whole validation
text, scored at each validation). training.policy.EXTENSION_PEAK_RATIO is chosen from it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from charrnn.config import TrainConfig

from .common import SHARED, charrnn, cpu_model, run_json

CORPORA = ("shakespeare", "psalms")
RATIOS = (1.0, 0.3, TrainConfig.final_lr_ratio)


def extend_cmd(run: Path, seconds: float, ratio: float) -> list[str]:
    """This script in extension mode: the peak ratio is a library argument, not an option."""
    options = ["--extend", str(run), "--seconds", str(seconds), "--ratio", str(ratio)]
    return [sys.executable, "-m", "benchmarks.extend", *options]


def extend_once(run: Path, seconds: float, ratio: float) -> None:
    """Extend `run` by `seconds` with its peak at lr x `ratio`; print the summary."""
    from charrnn.training.session import resume_run

    trainer = resume_run(run, max_time=seconds, peak_ratio=ratio)
    try:
        print(json.dumps(trainer.run().to_dict()))
    finally:
        trainer.runtime.close()


def row(corpus: str, name: str, summary: dict, wall: float) -> dict:
    keys = ("best_val_nats", "last_val_nats", "steps", "train_seconds", "stop_reason")
    return {"corpus": corpus, "name": name, **{k: summary[k] for k in keys}, "wall_s": round(wall)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="T: the first run's budget")
    parser.add_argument("--corpus", action="append", choices=CORPORA)
    parser.add_argument("--extend", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ratio", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.extend:
        extend_once(args.extend, args.seconds, args.ratio)
        return
    seconds = args.seconds
    print(json.dumps({"cpu": cpu_model(), "seconds": seconds}), flush=True)
    for corpus in args.corpus or CORPORA:
        folder = SHARED / "corpora" / corpus
        data = [str(folder / "train.txt"), "--val-file", str(folder / "val.txt")]
        data += ["--quiet", "--json"]
        with tempfile.TemporaryDirectory() as tmp:
            first = Path(tmp) / "first"
            summary, wall = run_json(
                charrnn("train", *data, "--out", str(first), "--max-time", str(seconds))
            )
            print(json.dumps(row(corpus, f"first {seconds:g} s", summary, wall)), flush=True)
            for ratio in RATIOS:
                copy = Path(tmp) / f"extended-{ratio:g}"
                shutil.copytree(first, copy, symlinks=True)
                summary, wall = run_json(extend_cmd(copy, seconds, ratio))
                name = f"+{seconds:g} s, peak lr x {ratio:g}"
                print(json.dumps(row(corpus, name, summary, wall)), flush=True)
                shutil.rmtree(copy)
            straight = Path(tmp) / "straight"
            summary, wall = run_json(
                charrnn("train", *data, "--out", str(straight), "--max-time", str(2 * seconds))
            )
            print(json.dumps(row(corpus, f"straight {2 * seconds:g} s", summary, wall)), flush=True)


if __name__ == "__main__":
    main()
