"""The commands agree with each other: escapes, Ctrl-C, -m / CHARRNN_MODEL, JSON
shapes, --quiet, inspect's default mode."""

import json

import pytest
from helpers import fails, no_traceback, ok

from charrnn.cli import cli
from charrnn.cli.base import unescape


@pytest.mark.parametrize(
    "given, meant",
    [
        ("a\\nb", "a\nb"),
        ("a\\tb", "a\tb"),
        ("a\\\\nb", "a\\nb"),  # an escaped backslash, then a plain n
        ("a\\qb", "a\\qb"),  # an unknown escape stays as it is
        ("end\\", "end\\"),
        ("no escapes", "no escapes"),
    ],
)
def test_the_one_escape_rule(given, meant):
    assert unescape(given) == meant


def test_score_sample_and_inspect_read_escapes_alike(runner, tiny_run):
    model = ["-m", str(tiny_run[0])]
    scored = ok(runner.invoke(cli, ["score", *model, "--json", "--top", "1", "Al\\nl:"]))
    record = json.loads(scored.stdout)
    assert [c["char"] for c in record["per_char"]] == list("Al\nl:")
    assert "never seen" not in scored.stderr  # no stray backslash
    sampled = ok(
        runner.invoke(cli, ["sample", *model, "--prime", "Al\\nl", "--length", "3", "--seed", "1"])
    )
    assert sampled.stdout.startswith("Al\nl")
    inspected = ok(runner.invoke(cli, ["inspect", *model, "--units", "0", "--json", "Al\\nl"]))
    assert json.loads(inspected.stdout)["text"] == "Al\nl"
    for command in ("sample", "score", "inspect"):
        help_text = ok(runner.invoke(cli, [command, "--help"])).stdout
        assert "\\n" in help_text and "newline" in help_text, command


def test_ctrl_c_in_sample_keeps_the_output_and_exits_130(runner, tiny_run, monkeypatch):
    import charrnn.inference.sample as sample_module

    def interrupted(*args, **kwargs):
        def steps():
            yield ["a"]
            yield ["b"]
            raise KeyboardInterrupt

        return steps()

    monkeypatch.setattr(sample_module, "generate", interrupted)
    result = runner.invoke(cli, ["sample", "-m", str(tiny_run[0]), "--prime", "Fi", "--seed", "1"])
    assert result.exit_code == 130
    assert result.stdout == "Fiab"
    assert "Aborted" not in result.output
    no_traceback(result)


def test_ctrl_c_in_score_exits_130_without_aborted(runner, tiny_run, monkeypatch):
    import charrnn.inference.score as score_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(score_module, "score_texts", interrupted)
    result = runner.invoke(cli, ["score", "-m", str(tiny_run[0]), "All"])
    assert result.exit_code == 130 and "Aborted" not in result.output
    no_traceback(result)


def test_inspect_text_shows_cells_without_asking(runner, tiny_run):
    model = ["-m", str(tiny_run[0])]
    plain = ok(runner.invoke(cli, ["inspect", *model, "--units", "1", "All:"]))
    explicit = ok(runner.invoke(cli, ["inspect", *model, "--cells", "--units", "1", "All:"]))
    assert plain.stdout == explicit.stdout and "unit 1" in plain.stdout


def test_short_model_option_and_environment_variable(runner, tiny_run, monkeypatch):
    run = str(tiny_run[0])
    long_form = ok(runner.invoke(cli, ["score", "--model", run, "--json", "All:"]))
    short_form = ok(runner.invoke(cli, ["score", "-m", run, "--json", "All:"]))
    monkeypatch.setenv("CHARRNN_MODEL", run)
    from_env = ok(runner.invoke(cli, ["score", "--json", "All:"]))
    assert long_form.stdout == short_form.stdout == from_env.stdout
    sampled = ok(runner.invoke(cli, ["sample", "--length", "20", "--seed", "4"]))
    assert (
        sampled.stdout
        == ok(runner.invoke(cli, ["sample", "-m", run, "--length", "20", "--seed", "4"])).stdout
    )
    described = json.loads(ok(runner.invoke(cli, ["info", "--json"])).stdout)
    assert described["model"].startswith(run)
    # An option given on the command line wins over the environment.
    monkeypatch.setenv("CHARRNN_MODEL", "no-such-model.safetensors")
    ok(runner.invoke(cli, ["score", "-m", run, "All:"]))
    fails(runner.invoke(cli, ["score", "All:"]), "no-such-model.safetensors")


def test_sample_json_gives_one_object_per_sample(runner, tiny_run):
    args = ["sample", "-m", str(tiny_run[0]), "--prime", "Fi", "--length", "30"]
    result = ok(runner.invoke(cli, [*args, "-n", "3", "--seed", "5", "--json", "-t", "0.5"]))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["sample"] for r in records] == [1, 2, 3]
    for record in records:
        assert record["seed"] == 5 and record["prime"] == "Fi"
        assert record["text"].startswith("Fi") and len(record["text"]) == 32
        assert record["settings"]["temperature"] == 0.5
        assert record["settings"]["num_samples"] == 3
    plain = ok(runner.invoke(cli, [*args, "-n", "3", "--seed", "5", "-t", "0.5"]))
    assert plain.stdout == "\n\n".join(r["text"] for r in records) + "\n"
    unseeded = ok(runner.invoke(cli, [*args, "--json"]))
    seed = json.loads(unseeded.stdout)["seed"]
    assert f"seed: {seed}" in unseeded.stderr


def test_score_json_lines_all_have_one_shape(runner, tiny_run):
    model = ["-m", str(tiny_run[0])]
    result = ok(runner.invoke(cli, ["score", *model, "--json", "All:", "Speak", "Fi"]))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3
    assert len({tuple(sorted(r)) for r in records}) == 1
    assert {r["kind"] for r in records} == {"text"}
    totals = ok(runner.invoke(cli, ["score", *model, "--json", "--total", "All:", "Speak"]))
    last = json.loads(totals.stdout.splitlines()[-1])
    assert last["kind"] == "total" and last["texts"] == 2 and last["chars"] == 4 + 5
    fails(runner.invoke(cli, ["score", *model, "--total", "All:"]), "--total goes with --json", 2)


def test_quiet_silences_notes_but_not_warnings(runner, tiny_run, tmp_path):
    model = ["-m", str(tiny_run[0])]
    noisy = ok(runner.invoke(cli, ["sample", *model, "--length", "5"]))
    assert "seed:" in noisy.stderr
    quiet = ok(runner.invoke(cli, ["sample", *model, "--length", "5", "-q"]))
    assert quiet.stderr == ""
    page = tmp_path / "page.html"
    wrote = ok(runner.invoke(cli, ["score", *model, "--html", str(page), "All:"]))
    assert f"wrote {page}" in wrote.stderr
    silent = ok(runner.invoke(cli, ["score", *model, "--html", str(page), "-q", "All:"]))
    assert silent.stderr == ""
    warned = ok(runner.invoke(cli, ["score", *model, "-q", "Sp€ak"]))
    assert "warning: skipped 1 character" in warned.stderr
