"""`charrnn sample --beam` and `--check-copy`: output, JSON, and every refusal."""

import dataclasses
import json

import pytest
from click.testing import CliRunner
from helpers import fails, ok

from charrnn.api import Model
from charrnn.cli import cli
from charrnn.inference.beam import beam_search
from charrnn.inference.copycheck import WINDOW, check_copies


def sample(runner, run, *args):
    return runner.invoke(cli, ["sample", "--model", str(run), *args])


# --------------------------------------------------------------------------- --check-copy
def test_check_copy_against_a_given_corpus(runner, tiny_run, tiny_corpus_file):
    run = tiny_run[0]
    args = ["--prime", "First", "--length", "80", "--seed", "3"]
    plain = ok(sample(runner, run, *args))
    checked = ok(sample(runner, run, *args, "--check-copy", str(tiny_corpus_file)))
    assert checked.stdout == plain.stdout  # stdout stays the sample
    continuation = plain.stdout[len("First") : -1]
    [report] = check_copies([continuation], [tiny_corpus_file.read_text()])
    lines = checked.stderr.splitlines()
    assert lines[0] == f"copy check against {tiny_corpus_file} (generated text only):"
    assert f"{WINDOW}-char windows found" in lines[1]
    assert lines[2].split()[:3] == ["1", "80", str(report.longest)]
    assert f"({report.windows_found}/{report.windows})" in lines[2]
    if report.longest:
        assert lines[3] == f"longest span of sample 1: {report.longest_text!r}"


@pytest.mark.parametrize("where", ["before another option", "last"])
def test_check_copy_without_a_value_reads_the_training_text(runner, tiny_run, where):
    run = tiny_run[0]
    args = (
        ["--check-copy", "--length", "30"]
        if where != "last"
        else ["--length", "30", "--check-copy"]
    )
    result = ok(sample(runner, run, *args, "--seed", "1", "-q"))
    assert "copy check against" in result.stderr and "tiny.txt" in result.stderr.splitlines()[0]
    assert len(result.stdout) == 31


def test_check_copy_reads_a_prepared_directory_and_json_has_the_report(runner, tiny_run):
    run = tiny_run[0]
    result = ok(
        sample(
            runner,
            run,
            "-n",
            "2",
            "--length",
            "40",
            "--seed",
            "2",
            "--json",
            "-q",
            "--check-copy",
            str(run / "data"),
        )
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2 and result.stderr == ""  # no table next to JSON
    for record in records:
        copy = record["copy"]
        assert copy["chars"] == 40 and copy["windows"] == 40 - WINDOW + 1
        assert copy["window_share"] == copy["windows_found"] / copy["windows"]
        assert (
            copy["longest_text"] in record["text"] and len(copy["longest_text"]) == copy["longest"]
        )


def test_short_samples_have_no_window_share(runner, tiny_run, tiny_corpus_file):
    result = ok(
        sample(
            runner,
            tiny_run[0],
            "--length",
            "5",
            "--seed",
            "1",
            "-q",
            "--check-copy",
            str(tiny_corpus_file),
        )
    )
    assert "- (shorter than a window)" in result.stderr


def test_check_copy_errors(runner, tiny_run, tiny_model, monkeypatch, tmp_path):
    run = tiny_run[0]
    missing = fails(
        sample(runner, run, "--check-copy", str(tmp_path / "nope.txt")), "no such corpus"
    )
    assert missing.stdout == ""
    unrecorded = dataclasses.replace(tiny_model, info={})
    monkeypatch.setattr("charrnn.cli.generation.load_model_arg", lambda path: Model(unrecorded))
    fails(sample(runner, run, "--check-copy"), "give one: --check-copy CORPUS")
    moved = dataclasses.replace(tiny_model, info={"corpus": str(tmp_path / "gone.txt")})
    monkeypatch.setattr("charrnn.cli.generation.load_model_arg", lambda path: Model(moved))
    result = fails(sample(runner, run, "--check-copy", "--length", "5"), "gone.txt is not there")
    assert result.stdout == ""  # refused before sampling


def test_the_help_names_the_window():
    result = ok(CliRunner().invoke(cli, ["sample", "--help"]))
    assert f"{WINDOW}-character" in " ".join(result.stdout.split())


# --------------------------------------------------------------------------- --beam
def test_beam_prints_the_prime_and_the_best_continuation(runner, tiny_run, tiny_model):
    result = ok(sample(runner, tiny_run[0], "--beam", "3", "--prime", "All", "--length", "30"))
    expected = beam_search(tiny_model, tiny_model.vocab, "All", 3, 30)
    assert result.stdout == "All" + expected.text + "\n"
    assert f"beam 3: log-probability {expected.log_prob:.4f} nats" in result.stderr
    assert "seed" not in result.stderr


def test_beam_with_stop_json_html_and_copy_check(runner, tiny_run, tiny_model, tiny_corpus_file):
    html = "beam.html"
    result = ok(
        sample(
            runner,
            tiny_run[0],
            "--beam",
            "2",
            "--prime",
            "First",
            "--length",
            "50",
            "--stop",
            " ",
            "--json",
            "--html",
            html,
            "--check-copy",
            str(tiny_corpus_file),
        )
    )
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    expected = beam_search(tiny_model, tiny_model.vocab, "First", 2, 50, stop=" ")
    assert record["beam"] == 2 and record["prime"] == "First"
    assert record["text"] == "First" + expected.text and record["text"].endswith(" ")
    assert record["log_prob"] == pytest.approx(expected.log_prob)
    assert record["copy"]["chars"] == len(expected.text)
    page = open(html, encoding="utf-8").read()
    assert "beam width" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "2"], "-n/--num-samples"),
        (["--top-k", "3"], "--top-k/--top-p"),
        (["--top-p", "0.5"], "--top-k/--top-p"),
        (["-t", "0.5"], "-t/--temperature"),
        (["--temperature", "0.8"], "-t/--temperature"),  # even the default, when given
    ],
)
def test_beam_refuses_options_about_drawing(runner, tiny_run, args, message):
    fails(sample(runner, tiny_run[0], "--beam", "2", *args), message, code=2)


def test_beam_width_must_be_positive(runner, tiny_run):
    fails(sample(runner, tiny_run[0], "--beam", "0"), "--beam", code=2)
