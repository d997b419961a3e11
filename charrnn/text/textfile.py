"""Reading text files: decoding in chunks, newline normalisation, clear errors.

Every command reads text through here, so a corpus, a scored file and a line
file are decoded the same way: UTF-8 by default, a leading BOM dropped,
CRLF and lone CR turned into LF.
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from ..errors import CorpusError

# 1 MiB of input per chunk keeps memory flat on big files, and buffers this size are
# reused warm; 4 MiB ones cost measurably more in page faults.
CHUNK_BYTES = 1 << 20


def iter_text_chunks(
    path: str | Path,
    encoding: str = "utf-8",
    chunk_bytes: int = CHUNK_BYTES,
    errors: str = "strict",
    keep_newlines: bool = False,
    normalization: str | None = None,
    on_bytes=None,
    first_chunk_bytes: int | None = None,
) -> Iterator[str]:
    """Yield the decoded text of `path` in pieces, newlines normalised to LF.

    errors="replace" turns undecodable bytes into U+FFFD instead of stopping;
    keep_newlines=True leaves CR and CRLF as they are; normalization="NFC"
    puts the text in that Unicode normal form, across chunk boundaries too.
    on_bytes(n), if given, is called with the number of bytes read, chunk by chunk.
    first_chunk_bytes, if given, is the size of the first read instead of chunk_bytes.
    """
    sizes = (first_chunk_bytes or chunk_bytes, chunk_bytes)
    pieces = _decoded_chunks(path, encoding, sizes, errors, keep_newlines, on_bytes)
    if not normalization:
        yield from pieces
        return
    held = ""  # the end of the previous piece, which may compose with what follows
    for piece in pieces:
        text = held + piece
        cut = _safe_cut(text)
        held = text[cut:]
        if cut:
            yield unicodedata.normalize(normalization, text[:cut])
    if held:
        yield unicodedata.normalize(normalization, held)


def _safe_cut(text: str) -> int:
    """An index where `text` may be split without changing its normal form.

    Nothing composes across a newline, nor onto an ASCII character from before
    it (ASCII is never the second part of a composition); as a last resort the
    final 64 characters are held back.
    """
    newline = text.rfind("\n")
    if newline >= 0:
        return newline + 1
    for index in range(len(text) - 1, max(-1, len(text) - 4096), -1):
        if text[index] < "\x80":
            return index
    return max(0, len(text) - 64)


def _decoded_chunks(path, encoding, sizes, errors, keep_newlines, on_bytes=None) -> Iterator[str]:
    if errors not in ("strict", "replace"):
        raise CorpusError(f"unknown error handling {errors!r}; use strict or replace")
    path = Path(path)
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # same decoding, but a leading BOM is not text
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors=errors)
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory, not a text file") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from None
    offset = 0  # bytes consumed before the current chunk
    pending_cr = False  # a chunk ended in CR: it may be the first half of CRLF
    with handle:
        while True:
            raw = handle.read(sizes[offset > 0])
            final = not raw
            try:
                text = decoder.decode(raw, final=final)
            except UnicodeDecodeError as exc:
                raise CorpusError(
                    f"{path}: not valid {encoding} text at byte {offset + exc.start}"
                ) from None
            offset += len(raw)
            if on_bytes is not None and raw:
                on_bytes(len(raw))
            if keep_newlines:
                if text:
                    yield text
                if final:
                    return
                continue
            if pending_cr:
                text = "\r" + text
            pending_cr = text.endswith("\r") and not final
            if pending_cr:
                text = text[:-1]
            if "\r" in text:  # a memchr; the replaces cost a pass each even when idle
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text:
                yield text
            if final:
                return


def read_text(path: str | Path, encoding: str = "utf-8", **options) -> str:
    """The whole decoded text of `path` (for scoring and small files)."""
    return "".join(iter_text_chunks(path, encoding, **options))
