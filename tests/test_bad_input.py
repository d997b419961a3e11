"""Files that are not text, or not in the encoding asked for: one line that says so and
what to do, the same wherever text is read (textfile.py)."""

import pytest
from conftest import TINY_TEXT
from helpers import TINY_TRAIN, fails, ok

from charrnn.cli import cli
from charrnn.errors import CorpusError
from charrnn.text.textfile import read_text

# The start of an ELF executable: a NUL at byte 7, bytes that are not UTF-8 soon after.
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8


def one_error_line(result) -> str:
    """The only line on stderr, which starts with 'Error:'."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize("errors", ["strict", "replace"])
def test_a_binary_file_is_called_binary_whatever_errors_says(runner, tmp_path, errors):
    (tmp_path / "prog").write_bytes(ELF)
    result = runner.invoke(cli, ["train", str(tmp_path / "prog"), "--errors", errors, "-q"])
    fails(result, "prog: a binary file (a NUL byte at byte 7), not text")
    one_error_line(result)


def test_a_latin1_file_names_the_encoding_asked_for_and_the_way_out(runner, tmp_path):
    text = TINY_TEXT.replace("speak", "parl\u00e9")
    (tmp_path / "notes.txt").write_bytes(text.encode("latin-1"))
    result = runner.invoke(cli, ["train", str(tmp_path / "notes.txt"), "-q", *TINY_TRAIN])
    line = one_error_line(fails(result, "notes.txt: not valid UTF-8 at byte "))
    assert f"at byte {text.index(chr(0xE9))} (0xe9);" in line  # Latin-1: a byte a character
    assert "utf-8-sig" not in line.lower()
    assert "--encoding" in line and "--errors replace" in line
    # Its own run directory: what a failed attempt leaves is not this test's business.
    latin1 = ["--encoding", "latin-1", "--out", "latin1"]
    ok(runner.invoke(cli, ["train", "notes.txt", "-q", *latin1, *TINY_TRAIN]))


def test_the_offset_counts_a_character_split_between_reads(tmp_path):
    # "é" is 2 bytes in UTF-8: with 3-byte reads the decoder holds its first byte back.
    (tmp_path / "t.txt").write_bytes("ab\u00e9".encode() + b"\xff")
    with pytest.raises(CorpusError, match=r"at byte 4 \(0xff\)"):
        read_text(tmp_path / "t.txt", chunk_bytes=3)


def test_a_nul_after_bad_bytes_in_the_same_read_is_still_binary(tmp_path):
    # A read is checked for a NUL before it is decoded; the first read is 1 MiB.
    (tmp_path / "t.bin").write_bytes(b"text\xff\xfe more text\x00")
    with pytest.raises(CorpusError, match=r"t.bin: a binary file \(a NUL byte at byte 16\)"):
        read_text(tmp_path / "t.bin")


def test_a_nul_in_a_later_read_is_found_at_its_offset(tmp_path):
    (tmp_path / "t.bin").write_bytes(b"plain text\n" * 3 + b"\x00")
    with pytest.raises(CorpusError, match=r"a NUL byte at byte 33\)"):
        read_text(tmp_path / "t.bin", chunk_bytes=5, errors="replace")


def test_utf16_text_is_text_but_a_nul_character_in_it_is_not(tmp_path):
    (tmp_path / "t.txt").write_bytes("h\u00e9llo\n".encode("utf-16"))
    assert read_text(tmp_path / "t.txt", "utf-16") == "h\u00e9llo\n"
    (tmp_path / "t.txt").write_bytes("h\u00e9\x00llo\n".encode("utf-16"))
    with pytest.raises(CorpusError, match=r"a NUL character at character 2\)"):
        read_text(tmp_path / "t.txt", "utf-16")


def test_commands_without_encoding_options_do_not_offer_them(runner, tmp_path):
    (tmp_path / "t.txt").write_bytes(b"caf\xe9\n")
    result = runner.invoke(cli, ["score", "-m", "shakespeare", "--file", str(tmp_path / "t.txt")])
    line = one_error_line(fails(result, "t.txt: not valid UTF-8 at byte 3 (0xe9); "))
    assert "--encoding" not in line
