"""Writing what a caller made (an HTML report) where the user asked."""

from __future__ import annotations

from pathlib import Path


def save_text(path: str | Path, text: str) -> None:
    """Write `text` as UTF-8 to `path` atomically: a file there before is either
    replaced whole or left as it was (a full disk, a kill)."""
    from ..atomic import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def read_text(path: str | Path) -> str:
    """A text file as charrnn reads one (UTF-8), with a one-line error for a file that
    is missing, binary or in another encoding."""
    from ..text.textfile import read_text as read

    return read(path)
