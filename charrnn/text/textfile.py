"""Reading text files: decoding in chunks, newline normalisation, clear errors.

Every command reads text through here, so a corpus, a scored file and a line
file are decoded the same way: UTF-8 by default, a leading BOM dropped,
CRLF and lone CR turned into LF; and refused the same way, in one line: a file
holding a NUL as binary (before any decoding error, which binary files have
too), bytes that do not decode with the encoding, the byte offset and the way out.
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

# What to do about bytes that do not decode, said after the error. Where the caller
# offers --encoding and --errors (training data: DataConfig, on the command line and
# in Python), those; elsewhere (score --file, inspect --file, the copy check) UTF-8
# is the only encoding read.
ENCODING_ADVICE = (
    "if it is in another encoding, pass --encoding (e.g. --encoding latin-1), or --errors "
    "replace to replace the bad bytes (from Python: encoding=, errors=)"
)
UTF8_ONLY_ADVICE = "this command reads UTF-8 only: convert the file first"


def iter_text_chunks(
    path: str | Path,
    encoding: str = "utf-8",
    chunk_bytes: int = CHUNK_BYTES,
    errors: str = "strict",
    keep_newlines: bool = False,
    normalization: str | None = None,
    on_bytes=None,
    first_chunk_bytes: int | None = None,
    advice: str = UTF8_ONLY_ADVICE,
) -> Iterator[str]:
    """Yield the decoded text of `path` in pieces, newlines normalised to LF.

    errors="replace" turns undecodable bytes into U+FFFD instead of stopping;
    keep_newlines=True leaves CR and CRLF as they are; normalization="NFC"
    puts the text in that Unicode normal form, across chunk boundaries too.
    on_bytes(n), if given, is called with the number of bytes read, chunk by chunk.
    first_chunk_bytes, if given, is the size of the first read instead of chunk_bytes.
    advice ends the error for bytes that do not decode: what the user can do about them
    (ENCODING_ADVICE where the caller takes an encoding and error handling).

    A NUL anywhere in the text refuses the file as binary, whatever `errors` says.
    """
    sizes = (first_chunk_bytes or chunk_bytes, chunk_bytes)
    pieces = _decoded_chunks(path, encoding, sizes, errors, keep_newlines, on_bytes, advice)
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


def _decoded_chunks(
    path, encoding, sizes, errors, keep_newlines, on_bytes=None, advice=UTF8_ONLY_ADVICE
) -> Iterator[str]:
    if errors not in ("strict", "replace"):
        raise CorpusError(f"unknown error handling {errors!r}; use strict or replace")
    path = Path(path)
    decoder = _decoder(encoding, errors)
    # A NUL is looked for in the bytes, before decoding, so that a binary file is called
    # binary and not badly encoded; in encodings where a 0 byte can be part of another
    # character (UTF-16, UTF-32), in the decoded text.
    nul_is_a_byte = _nul_is_a_byte(encoding)
    offset = 0  # bytes consumed before the current chunk
    chars = 0  # characters decoded before the current chunk (for the UTF-16 case)
    pending_cr = False  # a chunk ended in CR: it may be the first half of CRLF
    with _open(path) as handle:
        while True:
            raw = handle.read(sizes[offset > 0])
            final = not raw
            if nul_is_a_byte and (nul := raw.find(b"\0")) >= 0:
                raise CorpusError(_binary(path, f"a NUL byte at byte {offset + nul}"))
            held = len(decoder.getstate()[0])  # bytes of a character split between reads
            try:
                text = decoder.decode(raw, final=final)
            except UnicodeDecodeError as exc:
                bad = exc.object[exc.start : exc.end]
                at = offset - held + exc.start
                raise CorpusError(_undecodable(path, encoding, at, bad, advice)) from None
            if not nul_is_a_byte and (nul := text.find("\0")) >= 0:
                raise CorpusError(_binary(path, f"a NUL character at character {chars + nul}"))
            offset += len(raw)
            chars += len(text)
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


def _decoder(encoding: str, errors: str):
    """An incremental decoder for `encoding`; UTF-8 (any spelling) drops a leading BOM."""
    try:
        if codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"  # same decoding, but a leading BOM is not text
        return codecs.getincrementaldecoder(encoding)(errors=errors)
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None


def _nul_is_a_byte(encoding: str) -> bool:
    """True when a 0 byte always is a NUL character in `encoding` (UTF-8, Latin-1, the
    CJK multi-byte encodings: their multi-byte characters hold no 0 byte)."""
    try:
        return "\0".encode(encoding) == b"\0"
    except (LookupError, UnicodeError):
        return False


def _open(path: Path):
    """`path` opened for reading bytes, or one line saying why it cannot be."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory, not a text file") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from None


def _binary(path: Path, evidence: str) -> str:
    """The one-line error for a file that is not text, with what shows it."""
    return f"{path}: a binary file ({evidence}), not text"


def _undecodable(path: Path, encoding: str, at: int, bad: bytes, advice: str) -> str:
    """The one-line error for bytes that do not decode: the encoding as the user named
    it (UTF-8 for any spelling of it; never the utf-8-sig used inside), where, which
    bytes, and what to do."""
    name = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
    shown = " ".join(f"0x{byte:02x}" for byte in bad[:4])
    return f"{path}: not valid {name} at byte {at} ({shown}); {advice}"


def read_text(path: str | Path, encoding: str = "utf-8", **options) -> str:
    """The whole decoded text of `path` (for scoring and small files)."""
    return "".join(iter_text_chunks(path, encoding, **options))
