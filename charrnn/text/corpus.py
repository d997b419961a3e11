"""Preprocessing: a text corpus -> a compact id array on disk plus its vocabulary.

A prepared corpus is a directory holding `ids.npy` (train ids followed by
validation ids, in the narrowest unsigned dtype) and `meta.json` (vocabulary,
split point, and what it was made from, so a stale copy is never reused).
Text is streamed in chunks, so the corpus never sits in memory as Python text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes, atomic_writer
from ..bundled import bundled_corpus, corpus_record
from ..config import DataConfig
from ..errors import CorpusError
from .textfile import CHUNK_BYTES, ENCODING_ADVICE, iter_text_chunks
from .vocab import Vocabulary, code_points, smallest_id_dtype

FORMAT_VERSION = 1


FINGERPRINT_CHUNK = 1 << 24  # ids hashed at a time: the whole text is never in memory


@dataclass
class PreparedCorpus:
    directory: Path
    vocab: Vocabulary
    train: np.ndarray  # (N_train,) ids, memory-mapped
    val: np.ndarray  # (N_val,) ids, memory-mapped
    meta: dict

    @property
    def warnings(self) -> list[str]:
        """What is worth telling about this corpus, usable as it is (corpus_warnings)."""
        return corpus_warnings(self)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the vocabulary, the split and every id: equal for the same text
        prepared the same way, different after any change. Training states record it,
        so a resume never goes on with other data (4 ms for the bundled Shakespeare's 4.5M
        characters, measured)."""
        digest = hashlib.sha256(json.dumps([list(self.vocab.chars), len(self.train)]).encode())
        for part in (self.train, self.val):
            digest.update(part.dtype.str.encode())
            for begin in range(0, len(part), FINGERPRINT_CHUNK):
                digest.update(np.ascontiguousarray(part[begin : begin + FINGERPRINT_CHUNK]))
        return digest.hexdigest()


def _source_stamp(path: str | Path) -> dict:
    """What a source was: its path (bundled.corpus_record: the bundled corpus by a marker
    true on every install; a model file records the first source's), size and mtime."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": corpus_record(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


# Control characters other than tab, LF, FF and CR: a few are noise; many mean the file
# is not text (a NUL alone does: textfile refuses it while reading). So do very many
# U+FFFD after --errors replace (a text in the wrong encoding has some, random bytes
# have a lot).
_TEXT_CONTROLS = np.array([9, 10, 12, 13], dtype=np.uint32)
BINARY_CONTROL_SHARE = 0.01
BINARY_REPLACEMENT_SHARE = 0.25
# The check judges the text of the first read, 4 MiB (as it always has); later reads
# are smaller, which is faster (see textfile.CHUNK_BYTES).
FIRST_CHUNK_BYTES = 1 << 22
_IS_CONTROL = np.zeros(128, dtype=bool)  # ASCII code point -> counted as a control
_IS_CONTROL[:32] = _IS_CONTROL[127] = True
_IS_CONTROL[_TEXT_CONTROLS] = False


class _VocabularyScan:
    """Pass 1 over one source, chunk by chunk: the distinct code points, the
    character count, the control characters, and whether it is text at all.

    The ASCII part of a chunk (most of most corpora) is looked at as bytes:
    deleting the characters already seen with bytes.translate leaves only new
    characters and controls, usually nothing, in one pass in C.
    """

    def __init__(self, path):
        self.path = path
        self.seen = np.zeros(0x110000, dtype=bool)
        self.count = self.controls = 0
        self._skipped = bytes(range(128, 256))  # seen ASCII non-controls, and non-ASCII

    def add(self, chunk: str) -> None:
        if chunk.isascii():  # O(1) on a str
            control = self._add_ascii(chunk.encode("ascii"))
            self._judge(len(chunk), control, 0)
        else:
            cps = code_points(chunk)
            wide = cps[cps >= 128]
            self.seen[wide] = True
            # Every non-ASCII point becomes 255, which the ASCII scan skips.
            control = self._add_ascii(np.minimum(cps, 255).astype(np.uint8).tobytes())
            self._judge(len(cps), control, int((wide == 0xFFFD).sum()) if not self.count else 0)
        self.controls += len(control)
        self.count += len(chunk)

    def _add_ascii(self, data: bytes) -> np.ndarray:
        """Mark the ASCII characters of `data` seen; return its controls."""
        rest = np.frombuffer(data.translate(None, self._skipped), np.uint8)
        control = rest[_IS_CONTROL[rest]]  # every control of the chunk is in `rest`
        self.seen[rest] = True
        if len(rest) > len(control):  # new characters: skip them from now on
            known = np.flatnonzero(self.seen[:128] & ~_IS_CONTROL).astype(np.uint8)
            self._skipped = known.tobytes() + bytes(range(128, 256))
        return control

    def _judge(self, chars: int, control: np.ndarray, replaced: int) -> None:
        """Refuse a source whose first chunk does not look like text."""
        if self.count:
            return
        bad_controls = len(control)
        if (
            bad_controls > BINARY_CONTROL_SHARE * chars
            or replaced > BINARY_REPLACEMENT_SHARE * chars
        ):
            raise CorpusError(
                f"{self.path}: looks like a binary file, not text ({bad_controls} control and "
                f"{replaced} undecodable characters in the first {chars})"
            )

    def points(self) -> set[int]:
        return set(np.flatnonzero(self.seen).tolist())


def _normalization(config: DataConfig) -> str | None:
    """The Unicode form --normalize asks for: "NFC", or None."""
    return "NFC" if config.normalize else None


def _text_chunks(path, config: DataConfig, on_bytes=None):
    return iter_text_chunks(
        path,
        encoding=config.encoding,
        errors=config.errors,
        keep_newlines=config.keep_newlines,
        normalization=_normalization(config),
        chunk_bytes=CHUNK_BYTES,
        first_chunk_bytes=FIRST_CHUNK_BYTES,
        on_bytes=on_bytes,
        advice=ENCODING_ADVICE,  # training data takes --encoding and --errors
    )


def _scan(path: str | Path, config: DataConfig, on_bytes=None) -> tuple[set[int], int, int]:
    """Pass 1: the distinct code points, the character count, the control characters."""
    scan = _VocabularyScan(path)
    for chunk in _text_chunks(path, config, on_bytes):
        scan.add(chunk)
    return scan.points(), scan.count, scan.controls


def _write_ids(path, config, vocab, out, dtype, start, split_target, on_bytes=None):
    """Pass 2: append the ids of `path` to the open file `out`; the text's first
    character has index `start`. Return (end, index after the last newline before
    split_target)."""
    pos = start
    cut = None
    for chunk in _text_chunks(path, config, on_bytes):
        # Plain writes, not a memory map: written pages must not stay resident.
        if chunk.isascii():  # one byte per character and per id: bytes.translate
            ids = vocab.encode_ascii(chunk.encode("ascii"))
            out.write(ids if dtype == np.uint8 else np.frombuffer(ids, np.uint8).astype(dtype))
        else:
            out.write(vocab.encode_points(code_points(chunk), dtype))
        if split_target is not None and pos <= split_target:
            # str indices are code point indices, as in ids.
            newline = chunk.rfind("\n", 0, split_target - pos)
            if newline >= 0:
                cut = pos + newline + 1
        pos += len(chunk)
    return pos, cut


def default_prepared_dir(corpus: str | Path) -> Path:
    """Where `charrnn preprocess CORPUS` writes by default: beside the corpus."""
    corpus = Path(corpus)
    return corpus.with_name(corpus.name + ".charrnn")


def preprocess(
    corpus: str | Path,
    out_dir: str | Path,
    config: DataConfig | None = None,
    on_bytes=None,
    base_vocab: Vocabulary | None = None,
):
    """Encode `corpus` (and config.val_file) into `out_dir`; return the PreparedCorpus.

    The vocabulary is the sources' characters, plus those of `base_vocab` (a model's
    to start from: its characters keep a place even where the text lacks them).
    The sources are read twice (vocabulary, then ids); on_bytes(n) reports progress.
    """
    config = config or DataConfig()
    if not 0.0 < config.val_fraction < 1.0:
        raise CorpusError("the validation fraction must be between 0 and 1")
    sources = [corpus] + ([config.val_file] if config.val_file else [])
    points: set[int] = set()
    counts = []
    controls = 0
    for source in sources:
        source_points, count, source_controls = _scan(source, config, on_bytes)
        controls += source_controls
        if count == 0 or not "".join(map(chr, source_points)).strip():
            raise CorpusError(f"{source}: has no text (it is empty or only whitespace)")
        points |= source_points
        counts.append(count)
    if base_vocab is not None:
        points |= {ord(c) for c in base_vocab.chars}
    vocab = Vocabulary.from_code_points(points, _normalization(config))
    total = sum(counts)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A meta.json marks a complete directory: remove it before the ids change.
    (out_dir / "meta.json").unlink(missing_ok=True)
    dtype = smallest_id_dtype(len(vocab))
    with atomic_writer(out_dir / "ids.npy") as ids:
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (total,),
        }
        np.lib.format.write_array_header_1_0(ids, header)
        if config.val_file:
            split, _ = _write_ids(corpus, config, vocab, ids, dtype, 0, None, on_bytes)
            _write_ids(config.val_file, config, vocab, ids, dtype, split, None, on_bytes)
        else:
            target = int(total * (1.0 - config.val_fraction))
            _, cut = _write_ids(corpus, config, vocab, ids, dtype, 0, target, on_bytes)
            split = cut if cut else target  # no newline before the target: cut mid-line
    meta = {
        "format": "charrnn-corpus",
        "version": FORMAT_VERSION,
        "vocab": list(vocab.chars),
        "normalization": vocab.normalization,
        "split": split,
        "chars": total,
        "control_chars": controls,
        "data_config": asdict(config),
        "sources": [_source_stamp(s) for s in sources],
        "base_vocab": _base_chars(base_vocab),
    }
    # ids first, meta last: a directory whose meta.json exists is complete.
    atomic_write_bytes(out_dir / "meta.json", json.dumps(meta, ensure_ascii=False).encode())
    return load_prepared(out_dir)


def bytes_to_read(corpus: str | Path | None, val_file: str | Path | None = None) -> int:
    """The bytes `preprocess` reads from `corpus` (None: the bundled one) and `val_file`:
    each source twice (its characters, then its ids)."""
    sources = [corpus or bundled_corpus(), val_file]
    return 2 * sum(Path(p).stat().st_size for p in sources if p and Path(p).is_file())


def corpus_warnings(prepared: PreparedCorpus) -> list[str]:
    """What is worth telling about a prepared corpus that is still usable."""
    controls = prepared.meta.get("control_chars", 0)
    if not controls:
        return []
    return [
        f"the corpus holds {controls} control character(s) "
        "(other than tab, newline, carriage return and form feed)"
    ]


def load_prepared(directory: str | Path) -> PreparedCorpus:
    directory = Path(directory)
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        ids = np.load(directory / "ids.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{directory}: not a prepared corpus ({exc})") from None
    if meta.get("format") != "charrnn-corpus" or meta.get("version") != FORMAT_VERSION:
        raise CorpusError(f"{directory}: not a prepared corpus of this charrnn version")
    split = meta["split"]
    train, val = ids[:split], ids[split:]
    if len(train) < 2 or len(val) < 2:
        raise CorpusError(
            f"corpus too small to split: {len(train)} training and {len(val)} validation characters"
        )
    vocab = Vocabulary(tuple(meta["vocab"]), meta.get("normalization"))
    return PreparedCorpus(directory, vocab, train, val, meta)


def _base_chars(base_vocab: Vocabulary | None) -> list[str] | None:
    return list(base_vocab.chars) if base_vocab is not None else None


def is_fresh(
    directory: str | Path,
    corpus: str | Path,
    config: DataConfig,
    base_vocab: Vocabulary | None = None,
) -> bool:
    """True when `directory` holds `corpus` prepared with `config` (and `base_vocab`)
    and sources unchanged."""
    try:
        meta = json.loads((Path(directory) / "meta.json").read_text(encoding="utf-8"))
        sources = [corpus] + ([config.val_file] if config.val_file else [])
        return (
            meta.get("version") == FORMAT_VERSION
            and meta.get("data_config") == asdict(config)
            and meta.get("sources") == [_source_stamp(s) for s in sources]
            and meta.get("base_vocab") == _base_chars(base_vocab)
        )
    except (OSError, ValueError):
        return False


def prepare(
    corpus: str | Path,
    work_dir: str | Path,
    config: DataConfig | None = None,
    on_bytes=None,
    base_vocab: Vocabulary | None = None,
):
    """A prepared corpus for training: reuse a fresh one, else encode into `work_dir`.

    `corpus` may itself be a prepared directory. Otherwise the preprocess
    default (`CORPUS.charrnn` beside it) and `work_dir` are tried before encoding.
    With `base_vocab` the vocabulary holds its characters too (see preprocess); a
    prepared directory lacking some is re-encoded into `work_dir` (with_base_vocab).
    """
    config = config or DataConfig()
    corpus = Path(corpus)
    if corpus.is_dir():
        prepared = load_prepared(corpus)
        return prepared if base_vocab is None else with_base_vocab(prepared, base_vocab, work_dir)
    if not corpus.exists():
        raise CorpusError(f"{corpus}: no such file")
    for candidate in (default_prepared_dir(corpus), Path(work_dir)):
        if is_fresh(candidate, corpus, config, base_vocab):
            return load_prepared(candidate)
    return preprocess(corpus, work_dir, config, on_bytes, base_vocab)


REMAP_CHUNK = 1 << 24  # ids re-encoded at a time (a bounded slice of the memory map)


def with_base_vocab(
    prepared: PreparedCorpus, base_vocab: Vocabulary, work_dir: str | Path
) -> PreparedCorpus:
    """`prepared` with a vocabulary holding `base_vocab`'s characters too: itself when it
    has them all, else its ids translated to the larger vocabulary in `work_dir`."""
    chars = set(prepared.vocab.chars)
    if chars >= set(base_vocab.chars):
        return prepared
    out_dir = Path(work_dir)
    if out_dir.resolve() == prepared.directory.resolve():
        raise CorpusError(f"{out_dir}: cannot re-encode a prepared corpus into itself")
    vocab = Vocabulary(tuple(sorted(chars | set(base_vocab.chars))), prepared.vocab.normalization)
    table = np.array([vocab.id_of(c) for c in prepared.vocab.chars])  # old id -> new id
    dtype = smallest_id_dtype(len(vocab))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)
    whole = np.load(prepared.directory / "ids.npy", mmap_mode="r", allow_pickle=False)
    with atomic_writer(out_dir / "ids.npy") as out:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(out, {**header, "shape": whole.shape})
        for begin in range(0, len(whole), REMAP_CHUNK):
            out.write(table[whole[begin : begin + REMAP_CHUNK]].astype(dtype).tobytes())
    meta = {
        **prepared.meta,
        "vocab": list(vocab.chars),
        "base_vocab": list(base_vocab.chars),
        "reencoded_from": str(prepared.directory.resolve()),
    }
    atomic_write_bytes(out_dir / "meta.json", json.dumps(meta, ensure_ascii=False).encode())
    return load_prepared(out_dir)
