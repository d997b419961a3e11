"""Remake the README's screenshots (docs/*.png) with headless Chromium.

    python docs/make_screenshots.py

Runs `charrnn score --show` with colour forced on, turns the ANSI output into an
SVG terminal picture with rich, and screenshots it and the HTML reports.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.text import Text

DOCS = Path(__file__).resolve().parent
TEXT = (
    "ROMEO:\nBut, soft! what light through yonder window breaks?\n"
    "It is the east, and Juliet is the sun.\n"
)


def charrnn(*args: str, env: dict | None = None) -> str:
    return subprocess.run(
        [sys.executable, "-m", "charrnn.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=DOCS.parent,
        env={**os.environ, **(env or {})},
    ).stdout


def screenshot(page: Path, png: Path, size: str, work: Path) -> None:
    browser = next(filter(None, map(shutil.which, ("chromium", "google-chrome"))))
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        + [f"--user-data-dir={work / 'profile'}", f"--screenshot={png}", f"--window-size={size}"]
        + [page.as_uri()],
        capture_output=True,
        check=True,
    )
    print(f"{png}: {png.stat().st_size:,} bytes")


def main() -> None:
    work = Path(tempfile.mkdtemp())
    colour = {"FORCE_COLOR": "1", "COLORTERM": "truecolor", "COLUMNS": "80"}
    shown = charrnn("score", "--show", TEXT, env=colour)
    console = Console(
        record=True, width=80, force_terminal=True, color_system="truecolor", file=io.StringIO()
    )
    console.print(Text.from_ansi(shown), soft_wrap=True)
    svg = work / "score-show.svg"
    svg.write_text(console.export_svg(title="charrnn score --show"), encoding="utf-8")
    screenshot(svg, DOCS / "score-show.png", "1000,310", work)

    report = work / "report.html"
    charrnn("score", "--html", str(report), TEXT)
    screenshot(report, DOCS / "report.png", "1000,640", work)

    cells = work / "cells.html"
    corpus = (DOCS.parent / "data" / "shakespeare.txt").read_text(encoding="utf-8")[100_000:101_200]
    charrnn(
        "inspect",
        "--cells",
        "--find",
        "line-position",
        "--count",
        "3",
        "--html",
        str(cells),
        corpus,
    )
    screenshot(cells, DOCS / "cells.png", "1000,760", work)

    # Training curves of a short run (about two minutes on 2 cores): 300 steps on
    # the first 200 kB of the bundled corpus, validated every 30.
    corpus_file = work / "shakespeare-200k.txt"
    corpus_file.write_bytes((DOCS.parent / "data" / "shakespeare.txt").read_bytes()[:200_000])
    run = work / "run"
    charrnn(
        "train",
        str(corpus_file),
        "--out",
        str(run),
        "-q",
        "--max-time",
        "0",
        "--max-steps",
        "300",
        "--eval-every",
        "30",
        "--hidden",
        "128",
    )
    info = work / "info.html"
    charrnn("info", str(run), "--html", str(info))
    screenshot(info, DOCS / "info.png", "1000,900", work)


if __name__ == "__main__":
    main()
