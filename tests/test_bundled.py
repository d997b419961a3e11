"""The bundled corpus is recorded by a marker, not by the path of the machine that
trained on it, and found relative to the package wherever charrnn is installed."""

import json

import pytest
from conftest import TINY_TEXT
from helpers import TINY_TRAIN, ok

from charrnn import bundled
from charrnn.bundled import (
    BUNDLED_MARK,
    CORPUS_NAME,
    MODEL_NAME,
    corpus_path,
    corpus_record,
    is_bundled_record,
)
from charrnn.cli import cli
from charrnn.model.modelfile import load_model

MARK = BUNDLED_MARK + CORPUS_NAME
SHIPPED = bundled.data_dir()  # this checkout's data/, looked up before any test moves it


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Another install's data directory: the shipped model, a tiny corpus in place of
    Shakespeare (so that training on it is quick)."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / MODEL_NAME).symlink_to(SHIPPED / MODEL_NAME)
    (folder / CORPUS_NAME).write_text(TINY_TEXT, encoding="utf-8")
    monkeypatch.setattr(bundled, "data_dir", lambda: folder)
    return folder


def test_the_shipped_model_records_the_marker():
    assert load_model(SHIPPED / MODEL_NAME).info["corpus"] == MARK


def test_info_shows_the_bundled_corpus_of_this_install(runner, install, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line, however long the path
    shown = ok(runner.invoke(cli, ["info"])).stdout
    assert f"{install / CORPUS_NAME} (bundled)" in shown
    assert str(SHIPPED) not in shown
    described = json.loads(ok(runner.invoke(cli, ["info", "--json"])).stdout)
    assert described["info"]["corpus"] == MARK


def test_check_copy_finds_the_bundled_corpus_from_any_directory(runner):
    # The runner works in the test's own folder, not the checkout.
    args = ["sample", "-m", "shakespeare", "--check-copy", "--length", "30", "--seed", "1"]
    checked = ok(runner.invoke(cli, args))
    assert f"copy check against {SHIPPED / CORPUS_NAME}" in checked.stderr


def test_training_on_the_bundled_corpus_records_the_marker(runner, install):
    ok(runner.invoke(cli, ["train", "--out", "run", "-q", *TINY_TRAIN]))  # no CORPUS
    assert load_model("run/best.safetensors").info["corpus"] == MARK
    checked = ok(runner.invoke(cli, ["sample", "-m", "run", "--check-copy", "--length", "20"]))
    assert f"copy check against {install / CORPUS_NAME}" in checked.stderr


def test_other_corpora_are_recorded_by_their_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "mine.txt").write_text("text\n")
    monkeypatch.chdir(tmp_path)
    assert corpus_record("mine.txt") == str(tmp_path.resolve() / "mine.txt")
    assert corpus_path(str(tmp_path / "mine.txt")) == str(tmp_path / "mine.txt")
    assert corpus_record(SHIPPED / CORPUS_NAME) == MARK
    assert corpus_path(MARK) == str(SHIPPED / CORPUS_NAME)


def test_a_marker_never_names_another_file():
    for record in ("bundled:../../etc/passwd", "bundled:", "bundled:shakespeare.txt/x"):
        assert not is_bundled_record(record) and corpus_path(record) == record
