"""Two programs on one CPU: how much of its solo training speed charrnn keeps beside another.

    python -m benchmarks.concurrent [--steps 300] [--env NAME=VALUE ...]

Trains `charrnn train shakespeare/val.txt --max-time 0 --max-steps STEPS` (the
default model) alone, then beside each neighbour started at the same moment: a
second identical charrnn training, plain_lstm.py, plain_gpt.py (--bf16 where the
CPU has bfloat16), and `charrnn sample` of the bundled model. The figure is the
training throughput from `train --json` (start-up excluded), as a share of the solo
run's. `--env` adds variables to the charrnn processes (never to the yardsticks),
to compare thread settings. Prints the CPU, then one JSON line per case.
Run it alone on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import SHARED, VAL, charrnn, cpu_model

PLAIN_GPT = SHARED / "bench" / "plain_gpt.py"
NEIGHBOUR_SECONDS = 600  # a yardstick neighbour is stopped when the training ends


def _cpu_has_bfloat16() -> bool:
    info = Path("/proc/cpuinfo")
    return info.exists() and "avx512_bf16" in info.read_text()


def _training(run_dir: Path, steps: int) -> list[str]:
    return charrnn(
        "train", str(VAL), "--val-file", str(VAL), "--out", str(run_dir), "--max-time", "0",
        "--max-steps", str(steps), "--sample-chars", "0", "--quiet", "--json", "--force",
    )  # fmt: skip


def _neighbours(tmp: Path, steps: int) -> dict[str, list[str] | None]:
    gpt = [sys.executable, str(PLAIN_GPT), "--train", str(VAL), "--val", str(VAL)]
    plain = [sys.executable, str(SHARED / "bench" / "plain_lstm.py")]
    seconds = ["--seconds", str(NEIGHBOUR_SECONDS)]
    return {
        "alone": None,
        "beside charrnn train": _training(tmp / "other", steps),
        "beside plain_lstm.py": [*plain, "--train", str(VAL), "--val", str(VAL), *seconds],
        "beside plain_gpt.py": [*gpt, *seconds] + (["--bf16"] * _cpu_has_bfloat16()),
        "beside charrnn sample": charrnn("sample", "--length", "100000000", "--seed", "1"),
    }


def _chars_per_s(proc: subprocess.Popen) -> float:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"charrnn train failed: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])["chars_per_s"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--env", nargs="*", default=[], help="NAME=VALUE for charrnn")
    parser.add_argument("--cases", type=int, default=5, help="the first N cases only")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env)
    env = {**os.environ, **extra}
    print(json.dumps({"cpu": cpu_model(), "steps": args.steps, "env": extra}), flush=True)
    solo = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = list(_neighbours(tmp, args.steps).items())[: args.cases]
        for case, neighbour in cases:
            is_charrnn = neighbour is not None and neighbour[:3] == charrnn()[:3]
            other = (
                subprocess.Popen(
                    neighbour,
                    stdout=subprocess.PIPE if "train" in neighbour else subprocess.DEVNULL,
                    stderr=subprocess.PIPE if "train" in neighbour else subprocess.DEVNULL,
                    text=True,
                    env=env if is_charrnn else None,
                )
                if neighbour
                else None
            )
            training = subprocess.Popen(
                _training(tmp / "run", args.steps),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            speed = _chars_per_s(training)
            row = {"case": case, "chars_per_s": round(speed)}
            if other is not None:
                if "train" in neighbour:
                    row["neighbour_chars_per_s"] = round(_chars_per_s(other))
                else:
                    other.kill()
                    other.wait()
            solo = solo or speed
            row["share_of_solo"] = round(speed / solo, 3)
            if "neighbour_chars_per_s" in row:
                row["neighbour_share_of_solo"] = round(row["neighbour_chars_per_s"] / solo, 3)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
