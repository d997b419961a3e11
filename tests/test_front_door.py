"""One front door: the CLI is a shell over charrnn.api, and what a command can do,
Python can do, with the same names and defaults."""

import dataclasses
import inspect
import re

import click
import pytest
from click.testing import CliRunner
from helpers import fails, ok, tiny_train_args
from test_layout import PACKAGE, ROOT, imported_modules

import charrnn
from charrnn import api
from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig, SampleConfig, TrainConfig

# What charrnn/cli may import: the API, presentation, the errors and the settings'
# declarations (and its own modules), and the server (`charrnn serve`), itself over the API.
CLI_MAY_IMPORT = (
    "charrnn.api",
    "charrnn.views",
    "charrnn.errors",
    "charrnn.config",
    "charrnn.cli",
    "charrnn.serve",
)


def test_the_cli_imports_only_the_api_views_errors_and_settings():
    wrong = []
    for path in sorted((PACKAGE / "cli").rglob("*.py")):
        for name in imported_modules(path):
            if name != "charrnn" and not name.startswith(CLI_MAY_IMPORT):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong


def options_of(command: str) -> dict[str, click.Option]:
    return {p.name: p for p in cli.commands[command].params if isinstance(p, click.Option)}


@pytest.mark.parametrize(
    "command, classes",
    [("train", (DataConfig, ModelConfig, TrainConfig)), ("sample", (SampleConfig,))],
)
def test_each_setting_has_one_name_in_the_cli_and_in_python(command, classes):
    """--max-time is max_time, --grad-clip grad_clip: the option is the field's name."""
    options = options_of(command)
    for cls in classes:
        for f in dataclasses.fields(cls):
            if not f.metadata.get("cli", False):
                continue
            option = options[f.name]
            assert option.opts[0] == "--" + f.name.replace("_", "-"), (f.name, option.opts)


def test_train_and_resume_take_what_the_train_command_takes():
    train_options = set(options_of("train"))
    settings = {
        f.name for cls in (DataConfig, ModelConfig, TrainConfig) for f in dataclasses.fields(cls)
    } - {"vocab_size"}
    keywords = set(inspect.signature(api.train).parameters) - {"corpus", "settings"}
    # The command's own options that Python spells as arguments of other calls.
    command_only = {"resume_dir": "charrnn.resume", "as_json": "the result", "quiet": "reporter"}
    assert train_options - set(command_only) <= settings | keywords
    assert set(api.RESUMABLE) <= set(inspect.signature(api.resume).parameters) | set(
        TrainConfig.RESUMABLE
    )


def test_python_gets_the_cli_defaults():
    options = options_of("sample")
    for f in dataclasses.fields(SampleConfig):
        if f.metadata.get("cli", False):
            assert options[f.name].default == f.default, f.name
    assert options_of("train")["device"].default == inspect.signature(api.train).parameters[
        "device"
    ].default


def test_bad_sampling_settings_are_one_clear_error():
    m = charrnn.load()
    with pytest.raises(charrnn.CharRNNError, match="length must be an integer"):
        m.sample(length="abc")
    with pytest.raises(charrnn.CharRNNError, match="temperature must be a number"):
        m.sample(temperature=None)
    with pytest.raises(charrnn.CharRNNError, match="unknown sampling setting 'lenght'"):
        m.sample(lenght=3)


def test_info_takes_the_model_as_every_command_does(tmp_path):
    runner = CliRunner()
    by_option = ok(runner.invoke(cli, ["info", "-m", str(charrnn.load().path)]))
    by_argument = ok(runner.invoke(cli, ["info", str(charrnn.load().path)]))
    assert by_option.stdout == by_argument.stdout and "parameters" in by_option.stdout
    fails(runner.invoke(cli, ["info", "x", "-m", "y"]), "not both", 2)


def test_the_decided_defaults_say_their_rule_once():
    help_text = ok(CliRunner().invoke(cli, ["train", "--help"], terminal_width=200)).stdout
    assert "--init-from]" in help_text and "20; 20" not in help_text
    warmup = help_text.split("\n  --warmup-steps", 1)[1].split("\n  --", 1)[0]
    warmup = " ".join(warmup.split())
    assert "[default: 20]" in warmup, warmup


def test_training_twice_into_one_directory_says_how_to_go_on(tmp_path, tiny_corpus_file):
    runner, run = CliRunner(), tmp_path / "run"
    args = tiny_train_args(tiny_corpus_file, run, "--max-steps", "3")
    ok(runner.invoke(cli, args))
    again = fails(runner.invoke(cli, args), "already holds a training run")
    assert f"it is finished: `--resume {run} --max-time SECONDS` trains it further" in (
        again.stderr
    )
    extended = ok(runner.invoke(cli, ["train", "--resume", str(run), "--max-steps", "2", "-q"]))
    assert extended.exit_code == 0 and (run / "best.safetensors").exists()


def test_the_resume_usage_error_names_every_option_a_resume_takes(tmp_path):
    refused = fails(
        CliRunner().invoke(cli, ["train", "--resume", str(tmp_path), "--hidden", "8"]), "", 2
    )
    for option in ("--max-time", "--patience", "--device", "--precision"):
        assert option in refused.stderr


def test_the_training_time_counts_the_closing_validation(tmp_path, tiny_corpus_file):
    # The only validation is the closing one (eval_every is past the budget).
    result = charrnn.train(
        tiny_corpus_file, tmp_path / "run", hidden=16, embedding=4, batch_size=4, seq_len=8,
        max_time=0, max_steps=3, eval_every=1000, sample_chars=0, precision="fp32",
    )  # fmt: skip
    assert len(result.history) == 1 and result.eval_seconds > 0
    # (the record's time is rounded to 0.01 s)
    assert result.train_seconds >= result.history[-1]["time"] + result.eval_seconds - 0.006


def test_the_earlier_option_names_still_work_but_are_not_shown(tmp_path, tiny_corpus_file):
    help_text = ok(CliRunner().invoke(cli, ["train", "--help"])).stdout
    assert "--grad-clip" in help_text and "--val-file" in help_text
    assert "--clip" not in help_text.replace("--grad-clip", "")
    assert "--val " not in help_text and "--val," not in help_text
    run = tmp_path / "run"
    old_names = ["--val", str(tiny_corpus_file), "--clip", "0.5", "--max-steps", "2"]
    ok(CliRunner().invoke(cli, tiny_train_args(tiny_corpus_file, run, *old_names)))
    assert charrnn.load(run).info["train_config"]["grad_clip"] == 0.5


def test_the_python_page_names_only_calls_that_exist():
    page = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    table = page.split("## Every command in Python", 1)[1]
    model = charrnn.load()
    named = set()
    for call in re.findall(r"`(m|charrnn\.api|charrnn)\.(\w+)", table):
        named.add(call)
        owner = {"m": model, "charrnn.api": api, "charrnn": charrnn}[call[0]]
        assert hasattr(owner, call[1]), call
    assert len(named) >= 15
    commands = set(re.findall(r"^\| `charrnn (\w+)", table, re.M))
    assert commands == set(cli.commands), commands
