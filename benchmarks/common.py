"""Shared helpers for the benchmark scripts: paths, subprocess runs, JSON results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHARRNN_SHARED", ROOT.parent / "shared"))
TRAIN = SHARED / "corpora" / "shakespeare" / "train.txt"
VAL = SHARED / "corpora" / "shakespeare" / "val.txt"
PLAIN_LSTM = SHARED / "bench" / "plain_lstm.py"


def run_json(cmd: list[str], env: dict | None = None) -> tuple[dict, float]:
    """Run a command whose last stdout line is JSON; return it and the wall time."""
    began = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def charrnn(*args: str) -> list[str]:
    return [sys.executable, "-m", "charrnn.cli", *args]


def plain_lstm(train: Path, val: Path, seconds: float, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(PLAIN_LSTM),
        "--train",
        str(train),
        "--val",
        str(val),
        "--seconds",
        str(seconds),
        *extra,
    ]
