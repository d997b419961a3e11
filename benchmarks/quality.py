"""Quality per budget: `charrnn train` for N seconds vs plain_lstm.py, same run, same data.

    python -m benchmarks.quality --seconds 90 [--plain-args "--hidden 256 ..."] \
        [-- extra charrnn train options]

Prints one JSON line per contender and the ratio of validation losses. The
charrnn figure is `charrnn score --file VAL --exact` on the best model.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from pathlib import Path

from .common import TRAIN, VAL, charrnn, plain_lstm, run_json


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every quality-per-budget comparison takes: time, data, reference."""
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--train", type=Path, default=TRAIN)
    parser.add_argument("--val", type=Path, default=VAL)
    parser.add_argument("--no-plain", action="store_true", help="skip the reference run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    run_arguments(parser)
    parser.add_argument("--plain-args", default="", help="extra plain_lstm.py options")
    parser.add_argument(
        "--keep",
        type=Path,
        help="train into this run directory and keep it (default: a temporary one)",
    )
    parser.add_argument("train_args", nargs="*", help="extra `charrnn train` options")
    args = parser.parse_args(argv)

    rows = []
    if not args.no_plain:
        plain, _ = run_json(
            plain_lstm(args.train, args.val, args.seconds, *shlex.split(args.plain_args))
        )
        rows.append({"name": f"plain_lstm.py {args.plain_args}".strip(), **plain})
        print(json.dumps(rows[-1]), flush=True)
    rows.append(charrnn_row(args.train, args.val, args.seconds, args.train_args, args.keep))
    print(json.dumps(rows[-1]), flush=True)
    if len(rows) == 2:
        print(
            json.dumps(
                {
                    "val_nats_ratio_charrnn_over_plain": round(
                        rows[1]["val_nats"] / rows[0]["val_nats"], 4
                    )
                }
            )
        )


def charrnn_row(
    train: Path, val: Path, seconds: float, train_args: list[str], keep: Path | None = None
) -> dict:
    """`charrnn train TRAIN --val VAL --max-time SECONDS TRAIN_ARGS`, then the best
    model's exact score on VAL: one result row (into `keep`, else a temporary run)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = str(keep) if keep else tmp
        trained, wall = run_json(
            charrnn(
                "train",
                str(train),
                "--val-file",
                str(val),
                "--out",
                run_dir,
                "--quiet",
                "--json",
                "--max-time",
                str(seconds),
                *train_args,
            )
        )
        scored, score_wall = run_json(
            charrnn("score", "--model", trained["model"], "--file", str(val), "--exact", "--json")
        )
    return {
        "name": f"charrnn {' '.join(train_args)}".strip(),
        "chars_per_s": round(trained["chars_per_s"]),
        "val_nats": round(scored["nats_per_char"], 4),
        "val_bpc": round(scored["bits_per_char"], 4),
        "params": trained["parameters"],
        "chars_seen": trained["chars_seen"],
        "train_s": trained["train_seconds"],
        "steps": trained["steps"],
        "wall_s": round(wall, 1),
        "score_s": round(score_wall, 1),
        "precision": trained.get("precision"),
    }


if __name__ == "__main__":
    main()
