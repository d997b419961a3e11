"""Vanishing and exploding gradients, measured: the README's worked example.

    python -m benchmarks.gradients decay [--seconds 45] [--hidden 128] [--out DIR] [--html FILE]
    python -m benchmarks.gradients clipping [--lr 0.05] [--steps 300] [--hidden 128] [--out DIR]
    python -m benchmarks.gradients cost --before ../main [--steps 200] [--repeats 3]

decay: trains `--cell rnn`, `--cell lstm` and `--cell gru`, 1 x --hidden each, for
--seconds each on ../shared/corpora/shakespeare/train.txt (validating on val.txt),
then runs `charrnn inspect --gradients` on the three (the first 400 characters of
train.txt, k = 1..100) and prints, per model and state, the mean norm at k = 1 and
k = 100, where it falls below 1e-3 of its k = 1 value, and the fitted factor per step.

clipping: the same vanilla RNN for --steps steps at a large learning rate (validating on
the first 50,000 characters of val.txt every tenth of the steps), once with
clipping (--grad-clip 1, the default) and once without (--grad-clip 1e9, which no gradient
reaches); prints per run the largest loss after the warm-up, the largest rise of the
loss from one step to the next, the numerical faults reported (non-finite steps
skipped, rollbacks), the gradient norms and share of steps clipped from
metrics.jsonl, and the final validation loss (or the error that ended the run).

cost: what recording the gradient norm costs a training step: `charrnn train
--max-steps N` (validating on the first 50,000 characters of val.txt) with this checkout
and with --before (a checkout without it),
alternately, --repeats times each; prints the chars/s of each run.

Prints the CPU first, then one JSON line per result.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import ROOT, TRAIN, VAL, charrnn, cpu_model, run_json

CELLS = ("rnn", "lstm", "gru")
NO_CLIP = "1e9"  # a threshold no gradient norm reaches: clipping off


def decay(args, out: Path) -> None:
    for cell in CELLS:
        summary, wall = run_json(
            charrnn(
                "train",
                str(TRAIN),
                "--val-file",
                str(VAL),
                "--out",
                str(out / cell),
                "--force",
                "--cell",
                cell,
                "--hidden",
                str(args.hidden),
                "--max-time",
                str(args.seconds),
                "--seed",
                "0",
                "--quiet",
                "--json",
            )
        )
        keys = ("steps", "train_seconds", "best_val_nats")
        print(json.dumps({"cell": cell, **{k: summary[k] for k in keys}, "wall_s": round(wall)}))
    inspect = ["inspect", "--gradients", "--json", "--quiet"]
    for cell in CELLS:
        inspect += ["-m", str(out / cell)]
    if args.html:
        inspect += ["--html", str(args.html)]
    found, wall = run_json(charrnn(*inspect))
    print(json.dumps({"text": found["source"], "distance": found["distance"], "wall_s": wall}))
    for model in found["models"]:
        for state in ("h", "c"):
            if state not in model:
                continue
            norms = model[state]
            figures = model["decay"][state]
            print(
                json.dumps(
                    {
                        "cell": model["cell"],
                        "state": state,
                        "k1": norms[0],
                        f"k{len(norms)}": norms[-1],
                        **figures,
                    }
                ),
                flush=True,
            )


def clipping(args, out: Path) -> None:
    val = short_val(out)
    for clip in ("1", NO_CLIP):
        run = out / f"clip-{clip}"
        cmd = charrnn(
            "train",
            str(TRAIN),
            "--val-file",
            str(val),
            "--out",
            str(run),
            "--force",
            "--cell",
            "rnn",
            "--hidden",
            str(args.hidden),
            "--lr",
            str(args.lr),
            "--grad-clip",
            clip,
            "--max-time",
            "0",
            "--max-steps",
            str(args.steps),
            "--eval-every",
            str(max(args.steps // 10, 1)),
            "--sample-chars",
            "0",
            "--seed",
            "0",
            "--json",
        )
        done = subprocess.run(cmd, capture_output=True, text=True)
        losses = [r["loss"] for r in read_log(run / "steps.jsonl")]
        metrics = read_log(run / "metrics.jsonl")
        warm = losses[20:]
        rises = [b - a for a, b in zip(losses, losses[1:])]
        result = {
            "clip": float(clip),
            "lr": args.lr,
            "steps_logged": len(losses),
            "max_loss_after_warmup": max(warm) if warm else None,
            "max_rise": max(rises) if rises else None,
            "non_finite_steps": done.stderr.count("non-finite"),
            "rollbacks": done.stderr.count("rolled back"),
            "grad_norm_max": max((r["grad_norm_max"] or 0.0 for r in metrics), default=None),
            "clipped_share": [round(r["clipped_share"], 3) for r in metrics],
            "val_loss": [round(r["val_loss"], 4) for r in metrics],
        }
        if done.returncode != 0:
            result["error"] = done.stderr.strip().splitlines()[-1]
        print(json.dumps(result), flush=True)


def short_val(out: Path, chars: int = 50_000) -> Path:
    """The first `chars` characters of val.txt: validations that cost little wall time."""
    path = out / f"val-{chars}.txt"
    path.write_text(VAL.read_text(encoding="utf-8")[:chars], encoding="utf-8")
    return path


def read_log(path: Path) -> list[dict]:
    """The records of a run's JSON-lines log; none when the run ended before writing it."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cost(args, out: Path) -> None:
    checkouts = {"before": Path(args.before).resolve(), "after": ROOT}
    val = short_val(out)  # chars/s leaves validation out
    speeds: dict[str, list[float]] = {name: [] for name in checkouts}
    for repeat in range(args.repeats):
        for name, checkout in checkouts.items():
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            summary, _ = run_json(
                charrnn(
                    "train",
                    str(TRAIN),
                    "--val-file",
                    str(val),
                    "--out",
                    str(out / f"{name}-{repeat}"),
                    "--force",
                    "--max-time",
                    "0",
                    "--max-steps",
                    str(args.steps),
                    "--sample-chars",
                    "0",
                    "--quiet",
                    "--json",
                ),
                env=env,
                cwd=checkout,
            )
            speeds[name].append(summary["chars_per_s"])
            print(json.dumps({"checkout": name, "chars_per_s": summary["chars_per_s"]}), flush=True)
    print(json.dumps({name: statistics.median(values) for name, values in speeds.items()}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("decay", "clipping", "cost"))
    parser.add_argument("--seconds", type=float, default=45.0, help="decay: training budget")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--html", type=Path, help="decay: write inspect's page here")
    parser.add_argument("--lr", type=float, default=0.05, help="clipping: learning rate")
    parser.add_argument("--steps", type=int, default=300, help="clipping, cost: steps per run")
    parser.add_argument("--before", help="cost: a checkout without the gradient facts")
    parser.add_argument("--repeats", type=int, default=3, help="cost: runs per checkout")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary dir)")
    args = parser.parse_args(argv)
    if args.what == "cost" and not args.before:
        parser.error("cost needs --before CHECKOUT")
    print(json.dumps({"cpu": cpu_model(), "python": sys.version.split()[0]}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = (args.out or Path(tmp)).resolve()
        out.mkdir(parents=True, exist_ok=True)
        {"decay": decay, "clipping": clipping, "cost": cost}[args.what](args, out)


if __name__ == "__main__":
    main()
