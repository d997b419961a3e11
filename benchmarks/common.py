"""Shared helpers for the benchmark scripts: paths, subprocess runs, JSON results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHARRNN_SHARED", ROOT.parent / "shared"))
TRAIN = SHARED / "corpora" / "shakespeare" / "train.txt"
VAL = SHARED / "corpora" / "shakespeare" / "val.txt"
PLAIN_LSTM = SHARED / "bench" / "plain_lstm.py"


def run_json(
    cmd: list[str], env: dict | None = None, cwd: Path | None = None
) -> tuple[dict, float]:
    """Run a command whose last stdout line is JSON; return it and the wall time."""
    result, wall, _ = run_measured(cmd, env, cwd)
    return result, wall


def run_measured(
    cmd: list[str], env: dict | None = None, cwd: Path | None = None
) -> tuple[dict, float, float]:
    """Like run_json (`cwd`: the directory to run in, which `python -m` imports from
    first), plus the command's peak resident memory in MB, from the kernel
    (wait4's ru_maxrss of that one child)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})}, cwd=cwd
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.stderr.write(err.read()[-3000:])
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}")
        result = json.loads(out.read().strip().splitlines()[-1])
    return result, wall, usage.ru_maxrss / 1024  # KiB on Linux


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


def cpu_model() -> str:
    """The CPU's model name, family and model numbers, and the cores this process may
    use, from the kernel (a virtual machine may name only the vendor's line)."""
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    name = fields.get("model name", "unknown CPU")
    family = f" family {fields['cpu family']} model {fields['model']}" if "model" in fields else ""
    return f"{name}{family}, {cores} usable cores"
