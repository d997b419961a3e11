"""A second large-alphabet corpus: Japanese manual pages (Debian's manpages-ja).

    python -m benchmarks.manpages_ja [--out DIR]

Downloads the Debian package with `apt-get download` (run `apt-get update`
once first), reads every page in it (sorted by path), strips the troff
markup the way ../shared/corpora/manpages-zh was stripped (comment lines
dropped, request names removed with their arguments kept, font and special
character escapes undone), and writes DIR/train.txt and DIR/val.txt, the last
~10% cut at a line boundary. Prints one JSON line describing the text. The
pages are under the licences Debian lists in the package's copyright file;
nothing of them is kept in the repository.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import subprocess
import tempfile
import unicodedata
from pathlib import Path

from .common import ROOT

PACKAGE = "manpages-ja"
DEFAULT_OUT = ROOT / "benchmarks" / ".data" / PACKAGE
ESCAPES = {"\\-": "-", "\\e": "\\", "\\(em": "—", "\\(en": "–", "\\(bu": "•", "\\ ": " "}
ESCAPE = re.compile(r"\\f\[?[A-Z]*\]?|\\f\(..|\\\(..|\\[-e&| ^]|\\s[+-]?\d")


def plain_text(page: str) -> str:
    """A manual page's text without its troff markup."""
    lines = []
    for line in page.splitlines():
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if line.startswith((".", "'")):
            line = re.sub(r"^[.'][A-Za-z]+\s*", "", line).replace('"', "")
        line = ESCAPE.sub(lambda m: ESCAPES.get(m.group(0), ""), line)
        if line.strip():
            lines.append(line.rstrip())
    return "\n".join(lines)


def read_pages(root: Path) -> str:
    texts = []
    for path in sorted(root.rglob("*.gz")):
        if "/man/" in str(path):
            texts.append(plain_text(gzip.decompress(path.read_bytes()).decode("utf-8", "replace")))
    return unicodedata.normalize("NFC", "\n".join(texts) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=tmp, check=True, capture_output=True)
        (deb,) = Path(tmp).glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), "tree"], cwd=tmp, check=True)
        version = deb.name.split("_")[1]
        text = read_pages(Path(tmp) / "tree")
    cut = text.rfind("\n", 0, int(len(text) * 0.9)) + 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.txt").write_text(text[:cut], encoding="utf-8")
    (args.out / "val.txt").write_text(text[cut:], encoding="utf-8")
    counts = collections.Counter(text)
    kana_kanji = sum(
        n for c, n in counts.items() if "\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff"
    )
    ranked = sorted(counts.values(), reverse=True)
    print(
        json.dumps(
            {
                "package": f"{PACKAGE} {version}",
                "out": str(args.out),
                "train_chars": cut,
                "val_chars": len(text) - cut,
                "distinct": len(counts),
                "kana_kanji_share": round(kana_kanji / len(text), 3),
                "top100_share": round(sum(ranked[:100]) / len(text), 3),
                "top500_share": round(sum(ranked[:500]) / len(text), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
