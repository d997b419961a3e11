"""The chunked, fast preprocessing against the slow, obvious one.

The reference reads the whole text, decodes and normalises it in one go, and
looks every character up in a dict; preprocess must write the same ids.npy
byte for byte and the same vocabulary, split and control count, whatever the
chunk size (tiny chunks put boundaries everywhere: inside CRLF, between a
letter and its combining accent, between ASCII and non-ASCII chunks).
"""

import io
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from charrnn.config import DataConfig
from charrnn.errors import CorpusError, UnknownCharactersError
from charrnn.text import corpus
from charrnn.text.vocab import Vocabulary, code_points

TEXT_CONTROLS = "\t\n\x0c\r"


def reference_text(path: Path, config: DataConfig) -> str:
    encoding = config.encoding
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    text = path.read_bytes().decode(encoding, config.errors)
    if not config.keep_newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text) if config.normalize else text


def reference_preprocess(path: Path, config: DataConfig) -> tuple[bytes, dict]:
    """ids.npy's bytes and the meta fields that depend on the text, the slow way."""
    texts = [reference_text(path, config)]
    if config.val_file:
        texts.append(reference_text(Path(config.val_file), config))
    whole = "".join(texts)
    chars = sorted(set(whole))
    index = {char: i for i, char in enumerate(chars)}
    dtype = np.uint8 if len(chars) <= 256 else np.uint16
    ids = np.array([index[char] for char in whole], dtype=dtype)
    if config.val_file:
        split = len(texts[0])
    else:
        target = int(len(whole) * (1.0 - config.val_fraction))
        split = whole.rfind("\n", 0, target) + 1 or target
    controls = sum(
        1 for char in whole if (ord(char) < 32 or ord(char) == 127) and char not in TEXT_CONTROLS
    )
    npy = io.BytesIO()
    np.save(npy, ids)
    meta = {"vocab": chars, "split": split, "chars": len(whole), "control_chars": controls}
    return npy.getvalue(), meta


def mixed_text() -> str:
    """ASCII runs long enough to fill whole small chunks, between non-ASCII pieces:
    curly quotes, an emoji, Chinese, and accents both composed and decomposed."""
    ascii_run = "It is the east, and Juliet is the sun.\n" * 8
    pieces = ["\u201cquoted\u201d caf\u00e9", "cafe\u0301 ", "\U0001f389", "\u4e2d", "e\u0301"]
    return "".join(ascii_run + piece for _ in range(6) for piece in pieces) + ascii_run


CORPORA = {
    "ascii with controls": (
        ("plain text line\n" * 40 + "\x1b[0m colour\x07\x7f\x0b\n" + "tab\tff\x0c\n" * 20).encode(),
        {},
    ),
    "crlf and lone cr": ((("two words\r\n" * 60) + "lone\rcr\r").encode(), {}),
    "crlf kept": ((("two words\r\n" * 60) + "lone\rcr\r").encode(), {"keep_newlines": True}),
    "mixed ascii and not": (mixed_text().encode(), {}),
    "mixed, not normalised": (mixed_text().encode(), {"normalize": False}),
    "mixed with crlf": (mixed_text().replace("\n", "\r\n").encode(), {}),
    "latin-1": (("caf\u00e9 au lait\r\n" * 80).encode("latin-1"), {"encoding": "latin-1"}),
    "bad utf-8 replaced": (b"caf\xe9 au lait\r\n" * 80, {"errors": "replace"}),
    "bom": (b"\xef\xbb\xbf" + b"after a byte order mark\n" * 40, {}),
    "no newline before the split": (b"x" * 2000, {}),
    "a newline right at the split target": (b"\n" + b"a\n" * 50, {}),  # 101 chars, target 90
    # Over 256 characters: uint16 ids, also for the chunks that are all ASCII.
    "wide vocabulary": (
        ("ascii only line\n" * 30 + "".join(map(chr, range(0x4E00, 0x4F40))) + "\n").encode(),
        {"val_fraction": 0.3},
    ),
}


@pytest.fixture(params=[5, 64, 4096, None], ids=lambda size: f"chunk={size}")
def chunk_bytes(request, monkeypatch):
    if request.param:
        monkeypatch.setattr(corpus, "CHUNK_BYTES", request.param)
        monkeypatch.setattr(corpus, "FIRST_CHUNK_BYTES", request.param)
    return request.param


@pytest.mark.parametrize("name", list(CORPORA))
def test_fast_preprocessing_matches_the_slow_reference(tmp_path, chunk_bytes, name):
    content, options = CORPORA[name]
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    config = DataConfig(**options)
    prepared = corpus.preprocess(path, tmp_path / "out", config)
    npy, meta = reference_preprocess(path, config)
    assert (tmp_path / "out" / "ids.npy").read_bytes() == npy
    assert {key: prepared.meta[key] for key in meta} == meta


def test_validation_file_matches_the_reference(tmp_path, chunk_bytes):
    (tmp_path / "train.txt").write_bytes(CORPORA["ascii with controls"][0])
    (tmp_path / "val.txt").write_bytes(mixed_text().encode())
    config = DataConfig(val_file=str(tmp_path / "val.txt"))
    prepared = corpus.preprocess(tmp_path / "train.txt", tmp_path / "out", config)
    npy, meta = reference_preprocess(tmp_path / "train.txt", config)
    assert (tmp_path / "out" / "ids.npy").read_bytes() == npy
    assert {key: prepared.meta[key] for key in meta} == meta


@pytest.mark.parametrize("first", ["", "\u00e9"])  # the ASCII path and the general one
def test_binary_refusal_is_the_same_on_both_paths(tmp_path, first):
    path = tmp_path / "c.txt"
    path.write_text(first + "abcdefghi\x01\n" * 100, encoding="utf-8")
    message = f"100 control and 0 undecodable .* first {len(first) + 1100}\\)"
    with pytest.raises(CorpusError, match=message):
        corpus.preprocess(path, tmp_path / "out")
    path.write_text(first + "some text\n" * 50 + "\x00" + "some text\n" * 50, encoding="utf-8")
    with pytest.raises(CorpusError, match="binary"):
        corpus.preprocess(path, tmp_path / "out")


def test_binary_check_judges_the_first_4_mib(tmp_path):
    # 3% controls in the first MiB, under 1% in the first 4 MiB: text, as it always was.
    path = tmp_path / "c.txt"
    path.write_bytes(b"abcdefghi\x01\n" * 30_000 + b"clean text line\n" * 250_000)
    assert corpus.preprocess(path, tmp_path / "out").meta["control_chars"] == 30_000
    path.write_bytes(b"abcdefghi\x01\n" * 50_000 + b"clean text line\n" * 250_000)
    with pytest.raises(CorpusError, match="50000 control .* first 4194304"):
        corpus.preprocess(path, tmp_path / "out")


def test_encode_ascii_matches_encode_points():
    vocab = Vocabulary.from_text("Hello, world!\n\u00e9\u4e2d")
    data = b"world, Hello!\n" * 10
    expected = vocab.encode_points(code_points(data.decode("ascii")), np.uint8)
    assert vocab.encode_ascii(data) == expected.tobytes()
    with pytest.raises(UnknownCharactersError, match="'z'"):
        vocab.encode_ascii(b"Hello z")
