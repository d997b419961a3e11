from pathlib import Path

import numpy as np
import pytest

from charrnn.config import DataConfig
from charrnn.errors import CorpusError
from charrnn.text.corpus import is_fresh, prepare, preprocess
from charrnn.text.textfile import read_text

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "shakespeare"
BUNDLED = Path(__file__).resolve().parents[1] / "data" / "shakespeare.txt"


def test_split_is_cut_at_a_line_boundary(tmp_path):
    text = "".join(f"line {i}\n" for i in range(100))
    (tmp_path / "c.txt").write_text(text)
    prepared = preprocess(tmp_path / "c.txt", tmp_path / "out")
    train = prepared.vocab.decode(prepared.train)
    val = prepared.vocab.decode(prepared.val)
    assert train + val == text
    assert train.endswith("\n") and val.startswith("line")
    assert 0.08 < len(val) / len(text) <= 0.12
    assert prepared.train.dtype == np.uint8


@pytest.mark.skipif(not SHARED.exists(), reason=f"needs the benchmarks' split in {SHARED}")
def test_default_split_of_bundled_corpus_is_the_benchmark_split(tmp_path):
    prepared = preprocess(BUNDLED, tmp_path / "out")
    assert len(prepared.train) == len((SHARED / "train.txt").read_text())
    assert prepared.vocab.decode(prepared.val[:200]) == (SHARED / "val.txt").read_text()[:200]


def test_explicit_validation_file(tmp_path):
    (tmp_path / "t.txt").write_text("abc\n" * 50)
    (tmp_path / "v.txt").write_text("cab\nxyz\n")
    prepared = preprocess(
        tmp_path / "t.txt", tmp_path / "out", DataConfig(val_file=str(tmp_path / "v.txt"))
    )
    assert prepared.vocab.decode(prepared.val) == "cab\nxyz\n"
    assert len(prepared.train) == 200
    assert "x" in prepared.vocab  # the vocabulary covers both files


def test_newlines_bom_and_decoding(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    assert read_text(path) == "one\ntwo\nthree\n"
    # A CRLF split across two read chunks is still one newline.
    from charrnn.text.textfile import iter_text_chunks

    assert "".join(iter_text_chunks(path, chunk_bytes=6)) == "one\ntwo\nthree\n"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello \xff world")
    with pytest.raises(CorpusError, match="byte 6"):
        read_text(bad)


@pytest.mark.parametrize("content", ["", "   \n\n\t "])
def test_empty_corpus_is_refused(tmp_path, content):
    (tmp_path / "e.txt").write_text(content)
    with pytest.raises(CorpusError, match="no text"):
        preprocess(tmp_path / "e.txt", tmp_path / "out")


def test_prepare_reuses_a_fresh_copy_and_redoes_a_stale_one(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello there\n" * 20)
    first = prepare(corpus, tmp_path / "work")
    assert is_fresh(tmp_path / "work", corpus, DataConfig())
    mtime = (tmp_path / "work" / "ids.npy").stat().st_mtime_ns
    prepare(corpus, tmp_path / "work")
    assert (tmp_path / "work" / "ids.npy").stat().st_mtime_ns == mtime  # reused
    corpus.write_text("changed text\n" * 20)
    second = prepare(corpus, tmp_path / "work")
    assert second.vocab != first.vocab
    assert not is_fresh(tmp_path / "work", corpus, DataConfig(val_fraction=0.2))


def test_errors_replace_and_keep_newlines(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 au lait\r\n" * 200)  # Latin-1 bytes in a "UTF-8" file
    with pytest.raises(CorpusError, match="byte 3"):
        preprocess(bad, tmp_path / "a")
    replaced = preprocess(bad, tmp_path / "b", DataConfig(errors="replace"))
    assert "\ufffd" in replaced.vocab and "\r" not in replaced.vocab
    kept = preprocess(bad, tmp_path / "c", DataConfig(encoding="latin-1", keep_newlines=True))
    assert "é" in kept.vocab and "\r" in kept.vocab


@pytest.mark.parametrize("content", [b"\x00\x01binary\x00" * 100, bytes(range(256)) * 40])
def test_binary_files_are_refused(tmp_path, content):
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match="binary|not valid"):
        preprocess(path, tmp_path / "out", DataConfig(errors="replace"))


def test_a_few_control_characters_are_counted(tmp_path):
    (tmp_path / "c.txt").write_text("plain text line\n" * 500 + "\x1b[0m colour\n")
    prepared = preprocess(tmp_path / "c.txt", tmp_path / "out")
    assert prepared.meta["control_chars"] == 1


@pytest.mark.parametrize("line_end", ["\n", ""])
def test_nfc_across_chunk_boundaries(tmp_path, line_end):
    import unicodedata

    from charrnn.text.textfile import iter_text_chunks

    text = ("Cafe\u0301 cre\u0300me, \u1100\u1161\u11a8 " + line_end) * 300
    path = tmp_path / "nfd.txt"
    path.write_text(text, encoding="utf-8")
    for chunk_bytes in (5, 7, 64, 1 << 20):
        got = "".join(iter_text_chunks(path, chunk_bytes=chunk_bytes, normalization="NFC"))
        assert got == unicodedata.normalize("NFC", text), chunk_bytes
    prepared = preprocess(path, tmp_path / "out")
    assert "\u00e9" in prepared.vocab and "\u0301" not in prepared.vocab
    assert prepared.vocab.normalization == "NFC"
    kept = preprocess(path, tmp_path / "raw", DataConfig(normalize=False))
    assert "\u0301" in kept.vocab and kept.vocab.normalization is None
