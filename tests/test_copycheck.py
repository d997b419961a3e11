"""The copy check against the obvious brute force, chunk boundaries included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.config import DataConfig
from charrnn.errors import CorpusError
from charrnn.inference.copycheck import WINDOW, check_copies, corpus_chunks
from charrnn.text.corpus import preprocess


def brute_force(sample: str, corpus: str, window: int):
    """(longest span length, windows found, windows) by trying every substring."""
    longest = max(
        (
            j - i
            for i in range(len(sample))
            for j in range(i + 1, len(sample) + 1)
            if sample[i:j] in corpus
        ),
        default=0,
    )
    windows = [sample[i : i + window] for i in range(len(sample) - window + 1)]
    return longest, sum(w in corpus for w in windows), len(windows)


def pieces(text: str, cuts: list[int]) -> list[str]:
    """`text` split at the (sorted, deduplicated) positions `cuts`."""
    edges = [0, *sorted({c % (len(text) + 1) for c in cuts}), len(text)]
    return [text[a:b] for a, b in zip(edges, edges[1:])]


@settings(max_examples=300, deadline=None)
@given(
    samples=st.lists(st.text("abc", max_size=12), min_size=1, max_size=3),
    corpus=st.text("abcd", max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=8),
    window=st.integers(1, 5),
)
def test_matches_brute_force_however_the_corpus_is_cut(samples, corpus, cuts, window):
    reports = check_copies(samples, pieces(corpus, cuts), window=window)
    for sample, report in zip(samples, reports):
        longest, found, count = brute_force(sample, corpus, window)
        assert (report.longest, report.windows_found, report.windows) == (longest, found, count)
        assert len(report.longest_text) == longest and report.longest_text in corpus
        assert report.longest_text in sample
        assert report.window_share == (found / count if count else None)


def test_a_span_across_chunk_boundaries_is_found():
    corpus = "x" * 30 + "the quick brown fox jumps" + "y" * 30
    chunks = [corpus[i : i + 4] for i in range(0, len(corpus), 4)]  # far shorter than the span
    [report] = check_copies(["zz the quick brown fox jumps zz"], chunks, window=20)
    assert report.longest == 25
    assert report.longest_text == "the quick brown fox jumps"
    assert report.windows_found == 6 and report.windows == 12


def test_short_and_empty_samples():
    [short, empty] = check_copies(["abc", ""], ["xxabcxx"])
    assert short.window_share is None and short.longest == 3 and short.windows == 0
    assert empty.longest == 0 and empty.longest_text == "" and empty.window_share is None
    assert short.to_dict()["window"] == WINDOW


def test_nothing_in_common_and_an_empty_corpus():
    [report] = check_copies(["a" * 25], ["bbbb"])
    assert report.longest == 0 and report.window_share == 0.0
    [report] = check_copies(["a" * 25], [])
    assert report.longest == 0 and report.windows_found == 0


def test_the_corpus_is_read_once_and_lazily():
    reads = []

    def chunks():
        for piece in ["abcdef", "ghij"]:
            reads.append(piece)
            yield piece

    check_copies(["defgh"], chunks())
    assert reads == ["abcdef", "ghij"]


def test_corpus_chunks_of_a_file_and_of_its_prepared_directory(tmp_path, monkeypatch):
    text = "First line\nsecond line, caf\u00e9\n" * 50
    path = tmp_path / "c.txt"
    path.write_text(text, encoding="utf-8")
    assert "".join(corpus_chunks(path)) == text
    prepared = preprocess(path, tmp_path / "prep", DataConfig())
    monkeypatch.setattr("charrnn.inference.copycheck.DECODE_IDS", 7)
    chunks = list(corpus_chunks(prepared.directory))
    assert "".join(chunks) == text and max(map(len, chunks)) == 7
    assert np.asarray(prepared.val).size  # both parts were read back


def test_a_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="no such corpus"):
        list(corpus_chunks(tmp_path / "nope.txt"))
