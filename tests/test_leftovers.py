"""A train attempt that fails leaves nothing behind: no run directory it made, nothing of
an earlier run touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ok, tiny_train_args

import charrnn
from charrnn.cli import cli
from charrnn.errors import CharRNNError

BAD_CORPORA = {
    "nosuch": None,  # no file at all
    "empty": b"",
    "binary": bytes(range(256)) * 8,  # NUL bytes among others
    "latin1": "Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade.\n".encode("latin-1") * 40,
}


def bad_corpus(folder: Path, name: str) -> Path:
    path = folder / f"{name}.txt"
    if BAD_CORPORA[name] is not None:
        path.write_bytes(BAD_CORPORA[name])
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (the lock file aside), by relative path, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def one_error_line(result) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr


@pytest.mark.parametrize("name", list(BAD_CORPORA))
def test_a_failed_train_leaves_no_run_directory(runner, name):
    corpus = bad_corpus(Path.cwd(), name)
    one_error_line(runner.invoke(cli, ["train", corpus.name, "-q", "--hidden", "8"]))
    assert not Path("runs").exists()  # neither runs/<name> nor the runs/ it would have made
    one_error_line(runner.invoke(cli, tiny_train_args(corpus, Path("deep/er/run"))))
    assert not Path("deep").exists()
    # Nothing left for a later command to stumble on.
    one_error_line(runner.invoke(cli, ["score", "-m", f"runs/{name}", "hello"]))


def test_a_directory_that_was_there_stays(runner):
    Path("mine").mkdir()
    one_error_line(runner.invoke(cli, tiny_train_args(bad_corpus(Path.cwd(), "empty"), "mine")))
    assert Path("mine").is_dir() and not any(Path("mine").iterdir())


@pytest.mark.parametrize("name", ["binary", "nosuch"])
def test_a_failed_forced_start_leaves_the_earlier_run_untouched(runner, tiny_corpus_file, name):
    run = Path("run")
    ok(
        runner.invoke(
            cli, tiny_train_args(tiny_corpus_file, run, "--hidden", "8", "--max-steps", "3")
        )
    )
    before = snapshot(run)
    assert "best.safetensors" in before and "data/ids.npy" in before
    corpus = bad_corpus(Path.cwd(), name)
    one_error_line(runner.invoke(cli, tiny_train_args(corpus, run, "--force")))
    assert snapshot(run) == before
    assert not (run / ".lock").exists()


@pytest.mark.parametrize("name", ["nosuch", "binary", "latin1"])
def test_python_train_fails_without_leftovers(tmp_path, name):
    out = tmp_path / "runs" / "run"
    with pytest.raises(CharRNNError):
        charrnn.train(bad_corpus(tmp_path, name), out, hidden=8, max_steps=2)
    assert not (tmp_path / "runs").exists()


def test_a_setting_refused_after_the_corpus_was_read_leaves_nothing(tmp_path, tiny_corpus_file):
    # The hidden size is checked once the vocabulary is known: after data/ was written.
    out = tmp_path / "run"
    with pytest.raises(CharRNNError, match="hidden"):
        charrnn.train(tiny_corpus_file, out, hidden=0, max_steps=2)
    assert not out.exists()
