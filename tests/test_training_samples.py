"""Samples drawn at each validation: in metrics.jsonl, on stderr, in `charrnn info`."""

import json
from html import escape

import pytest
from click.testing import CliRunner
from helpers import ok, tiny_train_args

from charrnn.cli import cli
from charrnn.config import SampleConfig
from charrnn.inference.sample import sample_text
from charrnn.model.modelfile import load_model
from charrnn.training.rundir import RunDir
from charrnn.views.html import info_report
from charrnn.views.terminal import sample_lines, samples_over_run

CHARS = 30


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory, tiny_corpus_file):
    """A CLI run validating every 2 steps with samples of CHARS characters: (run, result)."""
    run = tmp_path_factory.mktemp("sampled") / "run"
    args = tiny_train_args(tiny_corpus_file, run, "--eval-every", "2", "--seed", "4")
    args = [a for a in args if a != "-q"] + ["--sample-chars", str(CHARS)]
    return run, ok(CliRunner().invoke(cli, args))


def test_each_validation_keeps_a_sample_of_the_weights_then(sampled_run):
    run, _ = sampled_run
    records = RunDir(run).metrics()
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    assert all(len(r["sample"]) == CHARS for r in records)
    # The same seed and weights give the same text: the last model, sampled afresh
    # from its file with the run's seed and SampleConfig's temperature.
    last = load_model(run / "last.safetensors")
    (again,) = sample_text(
        last, last.vocab, "", length=CHARS, temperature=SampleConfig.temperature, seed=4
    )
    assert records[-1]["sample"] == again


def test_samples_are_shown_under_each_validation(sampled_run):
    run, result = sampled_run
    for record in RunDir(run).metrics():
        assert f"  {sample_lines(record['sample'])[0]}" in result.stderr


def test_sample_chars_zero_leaves_them_out(tmp_path, tiny_corpus_file):
    args = tiny_train_args(tiny_corpus_file, tmp_path / "run", "--eval-every", "4")
    ok(CliRunner().invoke(cli, [*args, "--sample-chars", "0"]))
    records = RunDir(tmp_path / "run").metrics()
    assert len(records) == 2 and not any("sample" in r for r in records)


def test_info_shows_how_the_samples_changed(sampled_run, tmp_path):
    run, _ = sampled_run
    records = RunDir(run).metrics()
    out = ok(CliRunner().invoke(cli, ["info", str(run)])).stdout
    assert "samples while training" in out
    for record in (records[0], records[len(records) // 2], records[-1]):
        assert f"step {record['step']:,}, val {record['val_loss']:.4f}" in out
        assert sample_lines(record["sample"], max_lines=2)[0] in out
    described = json.loads(ok(CliRunner().invoke(cli, ["info", str(run), "--json"])).stdout)
    assert [r["sample"] for r in described["history"]] == [r["sample"] for r in records]
    page = tmp_path / "info.html"
    ok(CliRunner().invoke(cli, ["info", str(run), "--html", str(page)]))
    html = page.read_text(encoding="utf-8")
    assert "Samples while training" in html
    for record in records:
        assert escape(record["sample"]) in html


def test_the_html_page_escapes_samples():
    history = [{"step": 3, "val_loss": 2.5, "sample": '<script>alert("x")</script> & co'}]
    html = info_report("t", [], history)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in html


def test_sample_lines_show_newlines_and_cut_long_samples():
    assert sample_lines("ab\ncd", width=10) == ["ab↵cd"]
    assert sample_lines("x" * 25, width=10, max_lines=2) == ["x" * 10, "x" * 9 + "…"]
    assert sample_lines("") == [""]


def test_the_first_middle_and_last_samples_stand_for_the_run():
    history = [{"step": 0, "val_loss": 1.0}]  # a record from before samples
    history += [{"step": s, "val_loss": 1.0, "sample": str(s)} for s in range(1, 8)]
    assert [r["step"] for r in samples_over_run(history)] == [1, 4, 7]
