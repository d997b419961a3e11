"""Quality per budget on corpora other than Shakespeare, against plain_lstm.py.

    python -m benchmarks.corpora --seconds 90 [--corpus tang] [--corpus code]

tang: ../shared/corpora/tang300.txt (300 Tang poems, 2.6k distinct characters).
code: the top-level .py files of the running Python's standard library, in
name order, concatenated. Each is split at a line: the last 10% is the
validation text. Both contenders train on the same files for the same time;
the lines printed are those of benchmarks.quality, after one naming the corpus.
"""

from __future__ import annotations

import argparse
import json
import sysconfig
import tempfile
from pathlib import Path

from . import quality
from .common import SHARED

VAL_SHARE = 0.1


def tang_text() -> str:
    return (SHARED / "corpora" / "tang300.txt").read_text(encoding="utf-8")


def code_text() -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))
    return "".join(path.read_text(encoding="utf-8", errors="replace") for path in files)


CORPORA = {"tang": tang_text, "code": code_text}


def split_at_line(text: str) -> tuple[str, str]:
    cut = text.rfind("\n", 0, int(len(text) * (1 - VAL_SHARE))) + 1
    return text[:cut], text[cut:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--corpus", action="append", choices=sorted(CORPORA))
    args = parser.parse_args(argv)
    for name in args.corpus or sorted(CORPORA):
        train_text, val_text = split_at_line(CORPORA[name]())
        with tempfile.TemporaryDirectory() as tmp:
            train, val = Path(tmp) / f"{name}-train.txt", Path(tmp) / f"{name}-val.txt"
            train.write_text(train_text, encoding="utf-8")
            val.write_text(val_text, encoding="utf-8")
            print(
                json.dumps(
                    {
                        "corpus": name,
                        "train_chars": len(train_text),
                        "val_chars": len(val_text),
                        "distinct_chars": len(set(train_text + val_text)),
                    },
                    ensure_ascii=False,
                ),
                flush=True,
            )
            quality.main(["--seconds", str(args.seconds), "--train", str(train), "--val", str(val)])


if __name__ == "__main__":
    main()
