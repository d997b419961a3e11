"""Early stopping on a small text: what `--patience` saves in time and costs in loss.

    python -m benchmarks.patience [--seconds 60] [--chars 30000] [--patience 0 3 5]

Trains on the first --chars characters of ../shared/corpora/psalms/train.txt
(written to a temporary file), validating on psalms/val.txt, for --seconds each,
once per --patience value (0 = off), all with the defaults otherwise. Prints the
CPU, then one JSON line per run: seconds used, why it stopped, steps, and the best
validation loss from its `--json` summary (the whole validation text, scored at
each validation; the same figure for every run). Whether small texts get patience
by default (config.SMALL_TEXT_PATIENCE, which training.policy.default_patience gives
them) was decided from it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from .common import SHARED, charrnn, cpu_model, run_json

PSALMS = SHARED / "corpora" / "psalms"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chars", type=int, default=30_000, help="characters of train.txt")
    parser.add_argument("--patience", type=int, nargs="+", default=[0, 3, 5])
    args = parser.parse_args(argv)
    text = (PSALMS / "train.txt").read_text(encoding="utf-8")[: args.chars]
    print(json.dumps({"cpu": cpu_model(), "seconds": args.seconds, "chars": len(text)}))
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "psalms-slice.txt"
        train.write_text(text, encoding="utf-8")
        for patience in args.patience:
            summary, wall = run_json(
                charrnn(
                    "train",
                    str(train),
                    "--val-file",
                    str(PSALMS / "val.txt"),
                    "--out",
                    str(Path(tmp) / f"patience-{patience}"),
                    "--quiet",
                    "--json",
                    "--max-time",
                    str(args.seconds),
                    "--patience",
                    str(patience),
                )
            )
            keys = ("train_seconds", "stop_reason", "steps", "best_step", "best_val_nats")
            print(
                json.dumps(
                    {"patience": patience, **{k: summary[k] for k in keys}, "wall_s": round(wall)}
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
