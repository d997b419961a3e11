"""The vocabulary: Unicode code points <-> integer ids. Knows nothing of torch.

Ids are the positions of the characters in code-point order, so the same set of
characters always gives the same ids. Encoding works on numpy arrays of code
points, which keeps it fast for corpora of many megabytes.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CharRNNError, UnknownCharactersError


def code_points(text: str) -> np.ndarray:
    """The code points of `text` as a uint32 array (one entry per character)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def smallest_id_dtype(size: int) -> np.dtype:
    """The narrowest unsigned dtype that holds ids 0..size-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise CharRNNError(f"vocabulary of {size} characters is too large")


NORMALIZATIONS = (None, "NFC")


def normalize(text: str, form: str | None) -> str:
    """`text` in Unicode normal form `form` (None: unchanged)."""
    return unicodedata.normalize(form, text) if form else text


@dataclass(frozen=True)
class Vocabulary:
    """Sorted, distinct characters; id i is chars[i].

    `normalization` ("NFC" or None) is applied to every text before it is
    encoded, so a decomposed and a composed "é" are the same character; it is
    the form the training text was put in, and travels with the vocabulary.
    """

    chars: tuple[str, ...]
    normalization: str | None = None

    def __post_init__(self):
        if not self.chars:
            raise CharRNNError("a vocabulary needs at least one character")
        if any(len(c) != 1 for c in self.chars):
            raise CharRNNError("vocabulary entries must be single characters")
        if list(self.chars) != sorted(set(self.chars)):
            raise CharRNNError("vocabulary characters must be distinct and sorted")
        if self.normalization not in NORMALIZATIONS:
            raise CharRNNError(f"unknown normalization {self.normalization!r}")
        # Derived lookup tables; object.__setattr__ because the dataclass is frozen.
        points = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        if ((points >= 0xD800) & (points <= 0xDFFF)).any():
            # Half of a UTF-16 pair: no text holds one, and it cannot be printed.
            raise CharRNNError("vocabulary entries must not be surrogate code points")
        # Dense code point -> id table (-1: not in the vocabulary); at most 1.1M entries.
        # Encoding is then one gather per character, fast enough for gigabytes.
        table = np.full(int(points.max()) + 2, -1, dtype=np.int32)
        table[points] = np.arange(len(points), dtype=np.int32)
        object.__setattr__(self, "_table", table)
        # ASCII byte -> id as a bytes.translate table. ASCII characters sort first, so
        # their ids are below 128 and 0xFF marks "not in the vocabulary".
        ascii_ids = bytearray(b"\xff" * 256)
        for point in points[points < 128].tolist():
            ascii_ids[point] = int(table[point])
        object.__setattr__(self, "_ascii_ids", bytes(ascii_ids))
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    # -- construction -------------------------------------------------------
    @classmethod
    def from_code_points(cls, points: Iterable[int], normalization: str | None = None):
        chars = tuple(chr(int(p)) for p in sorted(set(int(p) for p in points)))
        return cls(chars, normalization)

    @classmethod
    def from_text(cls, text: str, normalization: str | None = None) -> Vocabulary:
        points = np.unique(code_points(normalize(text, normalization))).tolist()
        return cls.from_code_points(points, normalization)

    def to_json(self) -> str:
        return json.dumps(
            {"chars": list(self.chars), "normalization": self.normalization}, ensure_ascii=False
        )

    @classmethod
    def from_json(cls, data: str) -> Vocabulary:
        value = json.loads(data)
        if isinstance(value, list):  # the first model files: a bare list, no normalization
            value = {"chars": value}
        chars = value.get("chars") if isinstance(value, dict) else None
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise CharRNNError("vocabulary JSON must hold a list of characters")
        return cls(tuple(chars), value.get("normalization"))

    # -- queries ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def id_of(self, char: str) -> int | None:
        """The id of `char`, or None when the vocabulary lacks it."""
        return self._index.get(char)

    # -- the start of a text --------------------------------------------------
    @property
    def start_id(self) -> int | None:
        """The id read before a text's first character: a newline, as at the start of
        a line, so that the first character is predicted too. None without a newline."""
        return self._index.get("\n")

    def with_start(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """`ids` (int64) after the start id, as a model reads the text; without a
        start id, `ids` alone (the first character is then context only)."""
        ids = np.asarray(ids, dtype=np.int64)
        begin = self.start_id
        return ids if begin is None else np.concatenate([np.array([begin], np.int64), ids])

    def inputs_and_targets(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets) to predict `ids`: target t is predicted after reading
        inputs up to t. Every id is a target when there is a start id; else all but
        the first."""
        sequence = self.with_start(ids)
        return sequence[:-1], sequence[1:]

    def _lookup(self, points: np.ndarray) -> np.ndarray:
        """Ids of `points`, -1 where the vocabulary lacks the character."""
        # The table's last entry is -1, so clipping maps every larger point to "unknown".
        # take(mode="clip") clips as it gathers: several times faster than indexing.
        return np.take(self._table, points, mode="clip")

    def known_mask(self, points: np.ndarray) -> np.ndarray:
        """Boolean array: which code points the vocabulary has."""
        return self._lookup(points) >= 0

    def unknown_chars(self, text: str) -> list[str]:
        """Distinct characters of `text` missing from the vocabulary, in order of first use."""
        points = code_points(normalize(text, self.normalization))
        missing = points[~self.known_mask(points)]
        return list(dict.fromkeys(chr(p) for p in missing.tolist()))

    # -- encode / decode ----------------------------------------------------
    def encode_points(self, points: np.ndarray, dtype=np.int64) -> np.ndarray:
        """Map code points to ids; every point must be in the vocabulary."""
        ids = self._lookup(points)
        if len(ids) and ids.min() < 0:
            missing = list(dict.fromkeys(chr(p) for p in points[ids < 0].tolist()))
            raise UnknownCharactersError(missing)
        return ids.astype(dtype, copy=False)

    def encode_ascii(self, data: bytes) -> bytes:
        """Ids of ASCII text given as bytes, one byte per id, as encode_points would
        give them; every character must be in the vocabulary."""
        ids = data.translate(self._ascii_ids)  # a C loop, several times faster than a gather
        if b"\xff" in ids:
            missing = dict.fromkeys(chr(b) for b, i in zip(data, ids) if i == 0xFF)
            raise UnknownCharactersError(list(missing))
        return ids

    def encode(self, text: str, dtype=np.int64) -> np.ndarray:
        """Ids of `text`; raises UnknownCharactersError naming missing characters."""
        return self.encode_points(code_points(normalize(text, self.normalization)), dtype)

    def encode_known(self, text: str) -> tuple[np.ndarray, int]:
        """Ids of the characters of `text` the vocabulary has, and how many were dropped."""
        points = code_points(normalize(text, self.normalization))
        mask = self.known_mask(points)
        return self.encode_points(points[mask]), int((~mask).sum())

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)
