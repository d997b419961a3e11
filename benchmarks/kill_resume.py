"""Kill a real training run with SIGKILL at random moments, resume each time, and
check that no state is ever unreadable and that the end result equals an
uninterrupted run bit for bit.

    python -m benchmarks.kill_resume [--kills 20] [--steps 20000] [--seed 0]

Prints one JSON line: kills, states checked, unreadable states, whether the
final weights equal the uninterrupted run's.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from charrnn.errors import ModelFileError
from charrnn.training import checkpoint
from charrnn.training.rundir import RunDir

from .common import TRAIN


def train_cmd(corpus: Path, run: Path, steps: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "charrnn.cli",
        "train",
        str(corpus),
        "--out",
        str(run),
        "-q",
        "--hidden",
        "64",
        "--layers",
        "2",
        "--dropout",
        "0.1",
        "--batch-size",
        "8",
        "--seq-len",
        "32",
        "--max-time",
        "0",
        "--max-steps",
        str(steps),
        "--eval-every",
        "50",
        "--checkpoint-every",
        "0.05",
        "--keep",
        "3",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.txt"
        corpus.write_text(TRAIN.read_text(encoding="utf-8")[:300_000], encoding="utf-8")
        subprocess.run(train_cmd(corpus, tmp / "whole", args.steps), check=True)

        run = tmp / "killed"
        kills = checked = unreadable = resumes = 0
        steps_at_kills = []
        cmd = train_cmd(corpus, run, args.steps)
        while kills < args.kills:
            with (tmp / "stderr.txt").open("w") as err:
                proc = subprocess.Popen(cmd, stderr=err)
                time.sleep(rng.uniform(1.5, 5.0))  # ~2 s of it is starting Python and torch
            if proc.poll() is not None:
                raise SystemExit(
                    f"run ended before the kill (exit {proc.returncode}): "
                    + (tmp / "stderr.txt").read_text()[-2000:]
                )
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            for path in RunDir(run).state_files():
                checked += 1
                try:
                    checkpoint.load_state(path)
                except ModelFileError:
                    unreadable += 1
            latest = RunDir(run).latest_state()
            steps_at_kills.append(latest.meta["loop"]["step"] if latest else None)
            if latest is None:  # killed before the first state: start the run again
                cmd = [*train_cmd(corpus, run, args.steps), "--force"]
            else:
                cmd = [sys.executable, "-m", "charrnn.cli", "train", "--resume", str(run), "-q"]
            resumes += 1
        subprocess.run(cmd, check=True)
        whole = RunDir(tmp / "whole").latest_state()
        final = RunDir(run).latest_state()
        same = all(torch.equal(v, final.group("model")[k]) for k, v in whole.group("model").items())
        same_log = (tmp / "whole" / "steps.jsonl").read_text() == (run / "steps.jsonl").read_text()
    print(
        json.dumps(
            {
                "kills": kills,
                "resumes": resumes,
                "states_checked": checked,
                "unreadable_states": unreadable,
                "final_step": final.meta["loop"]["step"],
                "latest_state_step_after_each_kill": steps_at_kills,
                "final_weights_equal_uninterrupted": same,
                "step_log_equal_uninterrupted": same_log,
            }
        )
    )


if __name__ == "__main__":
    main()
