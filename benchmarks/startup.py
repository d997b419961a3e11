"""Start-up cost of a short sample against `import torch`, as wall time.

    python -m benchmarks.startup [--runs 7] [--baseline /path/to/older/checkout]

Times `python -m charrnn.cli sample --length 200 --seed 1` on the bundled
model and `python -c "import torch"`, interleaved, and prints one JSON line
with the medians and their ratio (the goal: a sample in under half the time
of importing torch). --baseline also times the same sample from another
checkout of the project (its own package and bundled model), in the same runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from .common import ROOT

SAMPLE = ["-m", "charrnn.cli", "sample", "--length", "200", "--seed", "1"]
IMPORT_TORCH = ["-c", "import torch"]


def wall_time(args: list[str], pythonpath: str) -> float:
    """Seconds for one `python ARGS` run with PYTHONPATH set to `pythonpath`."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, *args], env=env, cwd=pythonpath, stdout=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", help="another checkout of charrnn to time as well")
    args = parser.parse_args(argv)

    commands = {"sample_s": (SAMPLE, str(ROOT)), "import_torch_s": (IMPORT_TORCH, str(ROOT))}
    if args.baseline:
        commands["baseline_sample_s"] = (SAMPLE, os.path.abspath(args.baseline))
    times = {name: [] for name in commands}
    for command, path in commands.values():
        wall_time(command, path)  # untimed: the first run reads the files from disk
    for _ in range(args.runs):  # interleaved, so that all see the same machine load
        for name, (command, path) in commands.items():
            times[name].append(wall_time(command, path))
    results = {"runs": args.runs}
    results.update({name: round(statistics.median(t), 3) for name, t in times.items()})
    results["sample_over_import_torch"] = round(results["sample_s"] / results["import_torch_s"], 3)
    if args.baseline:
        results["baseline_over_import_torch"] = round(
            results["baseline_sample_s"] / results["import_torch_s"], 3
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
