"""Model size against the time budget (issue 26): which charrnn size is best for a
budget, and how charrnn compares with the yardsticks at each budget.

    python -m benchmarks.budget --grid --sizes 1x384,1x512,1x768 --budgets 90,600 \
        [--corpus shakespeare] [--extra '--dropout 0.1']
    python -m benchmarks.budget --compare --budgets 90,600 [--corpus manpages-zh]

`--grid`: one `charrnn train --max-time B --hidden H --layers L` per size and budget on
CORPUS/train.txt, each best model scored on the whole CORPUS/val.txt (`charrnn score
--exact`); one JSON line per run with its parameters, characters per second and
characters seen, so that a rule can be fitted in characters (budget x speed) rather
than in seconds of this CPU.

`--compare`: at each budget, charrnn with no size given (its defaults), charrnn at the
old defaults (1x384, no weight decay), `plain_lstm.py` (its defaults) and `plain_gpt.py` (6x192,
block 128, batch 16, lr 2e-3; --bf16 where the CPU has native bfloat16), one after
the other.

The CPU model is printed on stderr with a table. Run it alone on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import SHARED, cpu_model, plain_lstm, run_json
from .quality import charrnn_row

PLAIN_GPT = SHARED / "bench" / "plain_gpt.py"
GPT_SHAPE = ["--d", "192", "--layers", "6", "--heads", "6", "--block", "128"]
GPT_SHAPE += ["--batch", "16", "--lr", "2e-3"]
# charrnn's defaults before issue 26: 1x384 (a size given keeps batch 16 and no
# dropout), no weight decay
OLD_DEFAULTS = ["--layers", "1", "--hidden", "384", "--weight-decay", "0"]


def corpus_files(name: str) -> tuple[Path, Path]:
    root = SHARED / "corpora" / name
    return root / "train.txt", root / "val.txt"


def native_bf16() -> bool:
    from charrnn.training.precision import cpu_bfloat16

    return cpu_bfloat16().native


def size_args(size: str) -> list[str]:
    layers, hidden = size.lower().split("x")
    return ["--layers", layers, "--hidden", hidden]


def kept(args, budget: float, name: str) -> Path | None:
    """Where a charrnn run is kept (its metrics.jsonl: the validation curve), with
    --keep; None: a temporary directory."""
    if not args.keep:
        return None
    return Path(args.keep) / f"{args.corpus}-{budget:g}s-{'_'.join(name.split())}"


def grid(args, train: Path, val: Path) -> list[dict]:
    rows = []
    for budget in args.budgets:
        for size in args.sizes:
            name = " ".join([size, *args.extra])
            keep = kept(args, budget, name)
            row = charrnn_row(train, val, budget, size_args(size) + args.extra, keep)
            rows.append({"corpus": args.corpus, "budget_s": budget, "size": name, **row})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def compare(args, train: Path, val: Path) -> list[dict]:
    rows = []
    gpt_extra = ["--bf16"] if native_bf16() else []
    for budget in args.budgets:
        contenders = [
            (
                "charrnn (defaults)",
                lambda b: charrnn_row(train, val, b, [], kept(args, b, "defaults")),
            ),
            (
                "charrnn 1x384 no decay (old)",
                lambda b: charrnn_row(train, val, b, OLD_DEFAULTS, kept(args, b, "1x384")),
            ),
            ("plain_lstm.py", lambda b: run_json(plain_lstm(train, val, b))[0]),
            (
                "plain_gpt.py 6x192",
                lambda b: run_json(
                    [
                        sys.executable,
                        str(PLAIN_GPT),
                        "--train",
                        str(train),
                        "--val",
                        str(val),
                        "--seconds",
                        str(b),
                        *GPT_SHAPE,
                        *gpt_extra,
                    ]
                )[0],
            ),
        ]
        for name, run in contenders:
            if args.only and not any(word in name for word in args.only):
                continue
            row = {"corpus": args.corpus, "budget_s": budget, "contender": name, **run(budget)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def report(rows: list[dict]) -> None:
    err = sys.stderr
    print(f"CPU: {cpu_model()}", file=err)
    print(
        f"{'corpus':<12} {'budget':>6} {'run':<30} {'params':>10} {'chars/s':>8} {'val':>7}",
        file=err,
    )
    for r in rows:
        name = r.get("size") or r.get("contender")
        params = r.get("params") or r.get("parameters") or 0
        print(
            f"{r['corpus']:<12} {r['budget_s']:>6g} {name:<30} {params:>10,}"
            f" {r.get('chars_per_s', 0):>8,.0f} {r['val_nats']:>7.4f}",
            file=err,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", action="store_true")
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--corpus", default="shakespeare")
    parser.add_argument("--sizes", default="1x256,1x384,1x512,1x768")
    parser.add_argument("--budgets", default="90,600")
    parser.add_argument(
        "--only", default="", help="--compare: contenders whose name has one of these words"
    )
    parser.add_argument(
        "--extra",
        default="",
        help="--grid: more `charrnn train` options for every run, e.g. '--dropout 0.1'",
    )
    parser.add_argument(
        "--keep", default="", help="keep each charrnn run's directory under this folder"
    )
    args = parser.parse_args(argv)
    args.extra = args.extra.split()
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.budgets = [float(b) for b in args.budgets.split(",") if b]
    args.only = [w for w in args.only.split(",") if w]
    train, val = corpus_files(args.corpus)
    rows = []
    if args.grid:
        rows += grid(args, train, val)
    if args.compare:
        rows += compare(args, train, val)
    report(rows)


if __name__ == "__main__":
    main()
