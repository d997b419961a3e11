"""Fine-tuning the bundled model against training from scratch, on psalms (issue 13).

    python -m benchmarks.finetune [--max-time 60] [--texts slice,all]
    python -m benchmarks.finetune --grid [--lrs 1e-3,2e-3,4e-3] [--dropouts 0,0.2,0.5]

For each training text (`slice`: the first --slice-chars characters of
psalms/train.txt, written to a temporary directory; `all`: the whole file), trains
`charrnn train TEXT --val psalms/val.txt --max-time S --init-from shakespeare`
with the fine-tuning defaults and the same from scratch with the defaults, one
after the other, and scores each best model with
`charrnn score --file psalms/val.txt --exact`. Prints one JSON line per run, then
a table (nats/char, fine-tuned / scratch) and the CPU model. `--grid` trains the
fine-tuned side once per (lr, dropout) pair instead of with the defaults, to
choose training.policy.FINETUNE_LR and FINETUNE_DROPOUT.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

from .common import SHARED, charrnn, cpu_model, run_json

PSALMS = SHARED / "corpora" / "psalms"
BUNDLED = "shakespeare"  # the bundled model's short name


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def train_and_score(name: str, text: Path, val: Path, run_dir: Path, seconds: float, extra=()):
    """One `charrnn train` run and the score of its best model: a result row."""
    command = ["train", str(text), "--val-file", str(val), "--out", str(run_dir), "--force"]
    command += ["--quiet", "--json", "--max-time", str(seconds), *extra]
    trained, wall = run_json(charrnn(*command))
    scored, _ = run_json(
        charrnn("score", "--model", trained["model"], "--file", str(val), "--exact", "--json")
    )
    row = {
        "name": name,
        "options": " ".join(extra),
        "val_nats": round(scored["nats_per_char"], 4),
        "steps": trained["steps"],
        "chars_seen": trained["chars_seen"],
        "train_s": trained["train_seconds"],
        "wall_s": round(wall, 1),
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=float, default=60.0, help="seconds per training run")
    parser.add_argument("--texts", default="slice,all", help="slice, all, or both (comma)")
    parser.add_argument("--slice-chars", type=int, default=30_000)
    parser.add_argument("--train", type=Path, default=PSALMS / "train.txt")
    parser.add_argument("--val", type=Path, default=PSALMS / "val.txt")
    parser.add_argument("--grid", action="store_true", help="fine-tune once per (lr, dropout)")
    parser.add_argument("--lrs", type=floats, default=[1e-3, 2e-3, 4e-3], help="with --grid")
    parser.add_argument("--dropouts", type=floats, default=[0.0, 0.2, 0.5], help="with --grid")
    parser.add_argument("--no-scratch", action="store_true", help="skip the from-scratch runs")
    args = parser.parse_args(argv)
    labels = [t for t in args.texts.split(",") if t]
    if set(labels) - {"slice", "all"}:
        parser.error("--texts takes slice, all, or slice,all")

    print(json.dumps({"cpu": cpu_model(), "max_time": args.max_time}), flush=True)
    pairs = itertools.product(args.lrs, args.dropouts)
    fine_settings = (
        [["--lr", str(lr), "--dropout", str(dropout)] for lr, dropout in pairs]
        if args.grid
        else [[]]
    )  # without --grid: once, with the fine-tuning defaults
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        texts = {"all": args.train, "slice": Path(tmp) / "slice.txt"}
        if "slice" in labels:
            with open(args.train, encoding="utf-8", newline="") as source:
                texts["slice"].write_text(source.read(args.slice_chars), encoding="utf-8")
        for label in labels:
            scratch = None
            if not args.no_scratch:
                scratch = train_and_score(
                    f"{label} scratch", texts[label], args.val, run_dir, args.max_time
                )
            for settings in fine_settings:
                extra = ["--init-from", BUNDLED, *settings]
                fine = train_and_score(
                    f"{label} init-from", texts[label], args.val, run_dir, args.max_time, extra
                )
                table.append((label, " ".join(settings) or "defaults", fine, scratch))
    print(f"\npsalms, {args.max_time:g} s per run, scored on {args.val}; {cpu_model()}")
    print(f"{'text':6} {'fine-tuning':26} {'fine-tuned':>10} {'scratch':>9} {'ratio':>7}")
    for label, settings, fine, scratch in table:
        base = scratch["val_nats"] if scratch else float("nan")
        ratio = fine["val_nats"] / base
        print(f"{label:6} {settings:26} {fine['val_nats']:10.4f} {base:9.4f} {ratio:7.3f}")


if __name__ == "__main__":
    main()
