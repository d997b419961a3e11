"""The copy check: how much of a generated text occurs verbatim in a corpus.

Per sample: the longest span found verbatim in the corpus, and the share of its
WINDOW-character windows that occur there. The corpus is streamed once, in
chunks that overlap by (longest sample - 1) characters, so that every
occurrence of a piece of a sample lies whole inside some chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorpusError
from ..text.corpus import load_prepared
from ..text.textfile import iter_text_chunks

WINDOW = 20  # characters: longer than most common phrases, short enough to catch copying
DECODE_IDS = 1 << 20  # ids of a prepared corpus turned back into text at a time


@dataclass(frozen=True)
class CopyReport:
    """What of one sample occurs verbatim in the corpus."""

    chars: int  # the sample's length
    longest: int  # length of the longest span of the sample found in the corpus
    longest_text: str  # that span (the first such span found)
    windows: int  # the sample's windows: chars - window + 1, or 0 when shorter
    windows_found: int  # of those, how many occur in the corpus
    window: int = WINDOW

    @property
    def window_share(self) -> float | None:
        """The share of the sample's windows found in the corpus; None when the
        sample is shorter than one window."""
        return self.windows_found / self.windows if self.windows else None

    def to_dict(self) -> dict:
        return {
            "chars": self.chars,
            "longest": self.longest,
            "longest_text": self.longest_text,
            "window": self.window,
            "windows": self.windows,
            "windows_found": self.windows_found,
            "window_share": self.window_share,
        }


def check_copies(
    samples: list[str], corpus_chunks: Iterable[str], window: int = WINDOW
) -> list[CopyReport]:
    """A CopyReport per sample against the text that `corpus_chunks` yields in order.

    The samples are checked as given: pass generated text without the prime (the
    prime is the user's). One pass over the chunks; memory is one chunk, the
    overlap and the samples. Cost per chunk of C characters: one substring
    search (O(C)) per distinct window, plus, for the longest span, at most two
    per sample character while the best span is shorter than a window (longer
    candidates are searched only where all their windows occur in the chunk).
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    overlap = max((len(s) for s in samples), default=0) - 1
    windows = [[s[i : i + window] for i in range(len(s) - window + 1)] for s in samples]
    found = [[False] * len(w) for w in windows]
    best = [0] * len(samples)
    best_at = [0] * len(samples)
    tail = ""
    for chunk in corpus_chunks:
        if not chunk:
            continue
        # An occurrence of up to overlap + 1 characters lies whole in some `text`.
        text = tail + chunk
        tail = text[max(0, len(text) - overlap) :] if overlap > 0 else ""
        here: dict[str, bool] = {}  # window -> occurs in this text
        for s, sample in enumerate(samples):
            present = [here.setdefault(w, w in text) for w in windows[s]]
            found[s] = [a or b for a, b in zip(found[s], present)]
            best[s], best_at[s] = _longest(sample, text, best[s], best_at[s], present, window)
    return [
        CopyReport(
            chars=len(sample),
            longest=best[s],
            longest_text=sample[best_at[s] : best_at[s] + best[s]],
            windows=len(windows[s]),
            windows_found=sum(found[s]),
            window=window,
        )
        for s, sample in enumerate(samples)
    ]


def _longest(sample, text, best, best_at, present, window) -> tuple[int, int]:
    """The longest span of `sample` in `text` if longer than `best`, else (best, best_at).

    Greedy extension: a span starting at i of length best + 1 is looked for; when
    found, best grows and the same start is tried again, else the start moves on.
    Each test either grows best or moves i, so at most 2 len(sample) tests. A span
    of at least `window` characters can occur only if all its windows do (`present`).
    """
    i = 0
    while i + best + 1 <= len(sample):
        size = best + 1
        if size >= window and not all(present[i : i + size - window + 1]):
            i += 1
            continue
        if sample[i : i + size] in text:
            best, best_at = size, i
        else:
            i += 1
    return best, best_at


def corpus_chunks(path: str | Path, normalization: str | None = None) -> Iterator[str]:
    """The text of a corpus in pieces: a text file (decoded as `charrnn train` reads
    it, UTF-8) or a prepared corpus directory (its ids, training and validation
    parts, turned back into text)."""
    path = Path(path)
    if path.is_dir():
        prepared = load_prepared(path)
        total = len(prepared.train) + len(prepared.val)
        for start in range(0, total, DECODE_IDS):
            yield _decode_range(prepared, start, min(start + DECODE_IDS, total))
        return
    if not path.is_file():
        raise CorpusError(f"{path}: no such corpus file or prepared directory")
    yield from iter_text_chunks(path, normalization=normalization)


def _decode_range(prepared, start: int, stop: int) -> str:
    """Characters start..stop of a prepared corpus, over its train and val parts."""
    split = len(prepared.train)
    pieces = []
    if start < split:
        pieces.append(prepared.train[start : min(stop, split)])
    if stop > split:
        pieces.append(prepared.val[max(start, split) - split : stop - split])
    return "".join(prepared.vocab.decode(piece.tolist()) for piece in pieces)
