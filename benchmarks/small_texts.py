"""Small texts from scratch: `charrnn train` with its defaults against plain_lstm.py.

    python -m benchmarks.small_texts [--seconds 60] [--only psalms-30k tang300 ...] \
        [--no-plain] [-- extra charrnn train options]

Each text is a training file and a held-out validation file of the same kind:

    psalms-10k, -30k, -100k   the first N characters of ../shared/corpora/psalms/train.txt;
                              validation: psalms/val.txt (23k)
    tang300                   ../shared/corpora/tang300.txt, the last ~10% (cut at a line)
                              held out
    manpages-zh-30k           the first 30,000 characters of manpages-zh/train.txt;
                              validation: the first 30,000 of its val.txt
    fortunes-de-30k           German quotations (Debian's fortunes-de, fetched with
                              `apt-get download`): 30,000 characters, and the last
                              30,000 of the package held out
    python-30k                Python source (this interpreter's standard library,
                              the `email` package, files sorted): 30,000 characters,
                              and the next 30,000 held out

For each text, plain_lstm.py and then charrnn train for --seconds each, one after
the other; the charrnn figure is its best model's exact score on the whole
validation file (benchmarks.quality.charrnn_row), as plain's is. Prints the CPU,
one JSON line per run, then a table to stderr. Run it alone on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from .common import SHARED, cpu_model, plain_lstm, run_json
from .quality import charrnn_row

CORPORA = SHARED / "corpora"
SLICE = 30_000


def _cut(text: str, chars: int) -> str:
    """The first `chars` characters of `text`, ending at a line break when there is one."""
    head = text[:chars]
    end = head.rfind("\n")
    return head[: end + 1] if end > chars // 2 else head


def _fortunes_de(tmp: Path) -> str:
    """German quotations: every file of Debian's fortunes-de but the ASCII art, sorted."""
    subprocess.run(["apt-get", "download", "fortunes-de"], cwd=tmp, check=True, capture_output=True)
    (deb,) = tmp.glob("fortunes-de_*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), "tree"], cwd=tmp, check=True)
    folder = tmp / "tree" / "usr" / "share" / "games" / "fortunes" / "de"
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and p.suffix != ".dat"
    )
    return "".join(p.read_text("utf-8") for p in files if p.name != "asciiart")


def _python_source() -> str:
    folder = Path(sysconfig.get_paths()["stdlib"]) / "email"
    return "".join(p.read_text("utf-8") for p in sorted(folder.rglob("*.py")))


def build_texts(tmp: Path, names: list[str] | None) -> list[tuple[str, Path, Path]]:
    """(name, training file, validation file) for each small text, written under `tmp`."""
    psalms = (CORPORA / "psalms" / "train.txt").read_text("utf-8")
    sources = {
        "psalms-10k": lambda: (_cut(psalms, 10_000), CORPORA / "psalms" / "val.txt"),
        "psalms-30k": lambda: (_cut(psalms, 30_000), CORPORA / "psalms" / "val.txt"),
        "psalms-100k": lambda: (_cut(psalms, 100_000), CORPORA / "psalms" / "val.txt"),
        "tang300": lambda: _split((CORPORA / "tang300.txt").read_text("utf-8")),
        "manpages-zh-30k": lambda: (
            _cut((CORPORA / "manpages-zh" / "train.txt").read_text("utf-8"), SLICE),
            _cut((CORPORA / "manpages-zh" / "val.txt").read_text("utf-8"), SLICE),
        ),
        "fortunes-de-30k": lambda: _head_and_tail(_fortunes_de(tmp)),
        "python-30k": lambda: _head_and_next(_python_source()),
    }
    texts = []
    for name in names or sources:
        train, val = sources[name]()
        train_path = tmp / f"{name}.train.txt"
        train_path.write_text(train, encoding="utf-8")
        if isinstance(val, str):
            val_path = tmp / f"{name}.val.txt"
            val_path.write_text(val, encoding="utf-8")
        else:
            val_path = val
        texts.append((name, train_path, val_path))
    return texts


def _split(text: str) -> tuple[str, str]:
    """The first ~90% (cut at a line) to train on, the rest held out."""
    cut = text.rfind("\n", 0, int(len(text) * 0.9)) + 1
    return text[:cut], text[cut:]


def _head_and_tail(text: str) -> tuple[str, str]:
    """The first SLICE characters to train on; the last SLICE, from a line start, held out."""
    tail = text[-SLICE:]
    return _cut(text, SLICE), _cut(tail[tail.find("\n") + 1 :], SLICE)


def _head_and_next(text: str) -> tuple[str, str]:
    train = _cut(text, SLICE)
    return train, _cut(text[len(train) :], SLICE)


TEXT_NAMES = (
    "psalms-10k",
    "psalms-30k",
    "psalms-100k",
    "tang300",
    "manpages-zh-30k",
    "fortunes-de-30k",
    "python-30k",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--only", nargs="+", choices=TEXT_NAMES, help="these texts only")
    parser.add_argument("--no-plain", action="store_true", help="skip plain_lstm.py")
    parser.add_argument("train_args", nargs="*", help="extra `charrnn train` options")
    args = parser.parse_args(argv)
    print(json.dumps({"cpu": cpu_model(), "seconds": args.seconds}), flush=True)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, train, val in build_texts(Path(tmp), args.only):
            facts = {
                "text": name,
                "train_chars": len(train.read_text("utf-8")),
                "val_chars": len(val.read_text("utf-8")),
            }
            plain = None
            if not args.no_plain:
                plain, _ = run_json(plain_lstm(train, val, args.seconds))
                print(json.dumps({**facts, "name": "plain_lstm.py", **plain}), flush=True)
            row = charrnn_row(train, val, args.seconds, args.train_args)
            print(json.dumps({**facts, **row}), flush=True)
            ratio = row["val_nats"] / plain["val_nats"] if plain else None
            table.append((name, facts["train_chars"], plain, row, ratio))
    print("| text | train chars | plain nats | charrnn nats | charrnn / plain |", file=sys.stderr)
    print("|---|---:|---:|---:|---:|", file=sys.stderr)
    for name, chars, plain, row, ratio in table:
        shown = f"{ratio:.3f}" if ratio else "-"
        plain_nats = f"{plain['val_nats']:.4f}" if plain else "-"
        print(
            f"| {name} | {chars:,} | {plain_nats} | {row['val_nats']:.4f} | {shown} |",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
