"""Property tests: any Unicode text in, defined behaviour out."""

import math
import unicodedata

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig
from charrnn.errors import CorpusError
from charrnn.inference.score import score_text, score_texts
from charrnn.model.network import CharRNN
from charrnn.text.corpus import preprocess
from charrnn.text.vocab import Vocabulary, normalize

# Any code point except surrogates (not encodable as UTF-8 text).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FAST
@given(TEXT)
def test_encode_decode_round_trips_after_normalization(text):
    for form in (None, "NFC"):
        vocab = Vocabulary.from_text(text or "x", normalization=form)
        assert vocab.decode(vocab.encode(text)) == normalize(text, form)


@FAST
@given(train=TEXT.filter(lambda t: t.strip()), scored=TEXT)
def test_scores_are_finite_or_empty(train, scored):
    vocab = Vocabulary.from_text(train, normalization="NFC")
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), hidden=4, embedding=2)).eval()
    for result in [score_text(model, vocab, scored), *score_texts(model, vocab, [scored, train])]:
        if result.chars:
            assert math.isfinite(result.nats) and result.nats >= 0
        else:
            assert result.nats == 0
        assert result.unknown_chars >= 0


# A corpus preprocessing accepts: lines of any code points but control characters (a
# few are allowed, many or a NUL make a file binary) and surrogates, and at least 12
# of them, so that after NFC (which may merge characters, never a whole line) the
# text has 24 or more characters and its split leaves both parts 2 or more. A
# leading BOM would be dropped, so none is drawn.
LINE = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufeff"),
    min_size=1,
    max_size=40,
)
CORPUS = st.lists(LINE, min_size=12, max_size=40).map(lambda lines: "\n".join(lines) + "\n")


@FAST
@given(CORPUS.filter(lambda t: t.strip()))
def test_preprocessing_twice_is_byte_identical_and_keeps_the_text(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("prep")
    (folder / "c.txt").write_text(text, encoding="utf-8", newline="")
    first = preprocess(folder / "c.txt", folder / "a", DataConfig())
    preprocess(folder / "c.txt", folder / "b", DataConfig())
    assert (folder / "a" / "ids.npy").read_bytes() == (folder / "b" / "ids.npy").read_bytes()
    # The ids are the NFC text, character for character, split after a newline.
    train, val = first.vocab.decode(first.train), first.vocab.decode(first.val)
    assert train + val == unicodedata.normalize("NFC", text)
    assert train.endswith("\n") and len(val) >= 2


@FAST
@given(CORPUS, st.integers(min_value=0))
def test_a_nul_makes_a_text_binary(tmp_path_factory, text, where):
    """The refusal is a CorpusError that says why, never a crash."""
    where %= len(text)
    folder = tmp_path_factory.mktemp("nul")
    (folder / "c.txt").write_text(text[:where] + "\x00" + text[where:], encoding="utf-8")
    with pytest.raises(CorpusError, match="binary"):
        preprocess(folder / "c.txt", folder / "a", DataConfig())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    (folder / "c.txt").write_text("Any text, any script: é ß 中 🎉\n" * 60, encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [
            "train",
            str(folder / "c.txt"),
            "--out",
            str(folder / "r"),
            "-q",
            "--hidden",
            "8",
            "--embedding",
            "2",
            "--batch-size",
            "2",
            "--seq-len",
            "8",
            "--max-time",
            "0",
            "--max-steps",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    return folder / "r"


@FAST
@given(text=TEXT, command=st.sampled_from(["score", "sample", "score-lines"]))
def test_no_input_gives_a_traceback(model_dir, text, command):
    runner = CliRunner()
    if command == "score":
        result = runner.invoke(cli, ["score", "--model", str(model_dir), "--json", "--", text])
    elif command == "score-lines":
        result = runner.invoke(cli, ["score", "--model", str(model_dir)], input=text)
    else:
        result = runner.invoke(
            cli,
            ["sample", "--model", str(model_dir), "--prime", text, "--length", "3", "--seed", "0"],
        )
    assert result.exit_code in (0, 1), result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception  # the traceback a user would have seen
