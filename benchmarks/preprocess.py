"""Preprocessing speed and memory on a generated corpus of a given size.

    python -m benchmarks.preprocess --mb 100 [--mb 1000]

The corpus is Shakespeare's train.txt repeated to the size asked for, written
to a temporary directory; `charrnn preprocess` runs in a child process, whose
peak RSS is read from the kernel (ru_maxrss). Prints one JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from .common import TRAIN, charrnn


def make_corpus(path: Path, megabytes: float) -> int:
    piece = TRAIN.read_bytes()
    target = int(megabytes * 1e6)
    written = 0
    with path.open("wb") as out:
        while written < target:
            chunk = piece[: target - written]
            out.write(chunk)
            written += len(chunk)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, action="append", help="corpus size in MB")
    args = parser.parse_args(argv)
    for megabytes in args.mb or [100.0]:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus.txt"
            size = make_corpus(corpus, megabytes)
            began = time.perf_counter()
            proc = subprocess.run(
                charrnn("preprocess", str(corpus), "--out", f"{tmp}/out"),
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - began
            if proc.returncode:
                raise SystemExit(proc.stderr)
            # ru_maxrss of the largest child so far, in KiB on Linux.
            peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(
            json.dumps(
                {
                    "mb": round(size / 1e6, 1),
                    "seconds": round(seconds, 2),
                    "mb_per_s": round(size / 1e6 / seconds, 1),
                    "peak_rss_mb": round(peak_kib / 1024, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
