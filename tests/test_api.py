"""The Python API at the package top: load / Model / train / resume, and the README's
Python example run as written."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import ok, tiny_train_args

import charrnn
from charrnn.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_importing_charrnn_is_cheap_and_lists_its_api():
    code = "import sys, charrnn; charrnn.load; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"  # finding load imports no torch
    for name in ("load", "train", "resume", "Model", "SampleConfig", "CharRNNError"):
        assert name in dir(charrnn) and name in charrnn.__all__
    with pytest.raises(AttributeError):
        charrnn.no_such_thing  # noqa: B018


def test_load_sample_and_score_agree_with_the_cli(tiny_run):
    run = tiny_run[0]
    m = charrnn.load(run)
    assert isinstance(m, charrnn.Model) and m.path == run / "best.safetensors"
    assert repr(m).startswith("<charrnn.Model lstm 1x32")
    text = m.sample("Fi", length=40, temperature=0.5, seed=3)
    cli_text = ok(
        CliRunner().invoke(
            cli,
            [
                "sample",
                "-m",
                str(run),
                "--prime",
                "Fi",
                "--length",
                "40",
                "-t",
                "0.5",
                "--seed",
                "3",
            ],
        )
    ).stdout
    assert cli_text == text + "\n"
    assert m.samples(2, "Fi", length=10, seed=3) == m.samples(2, "Fi", length=10, seed=3)
    one = m.score("All: speak")
    many = m.score(["All: speak", "Fi"])
    assert len(many) == 2 and many[0].nats == pytest.approx(one.nats)
    cli_score = json.loads(
        ok(CliRunner().invoke(cli, ["score", "-m", str(run), "--json", "All: speak"])).stdout
    )
    assert cli_score["nats_per_char"] == pytest.approx(one.nats_per_char)
    seen = m.analyze("All: speak")
    assert seen.score().nats == pytest.approx(one.nats)
    assert m.activations("All", layer=0).values["h"].shape == (3, 32)


def test_bad_settings_are_one_clean_error(tiny_run, tmp_path):
    m = charrnn.load(tiny_run[0])
    with pytest.raises(charrnn.CharRNNError, match="temprature"):
        m.sample(temprature=0.5)
    with pytest.raises(charrnn.CharRNNError, match="top-p"):
        m.sample(top_p=0)
    with pytest.raises(charrnn.CharRNNError, match="hiden"):
        charrnn.train(tmp_path / "none.txt", out=tmp_path / "r", hiden=3)
    with pytest.raises(charrnn.ModelFileError):
        charrnn.load(tmp_path / "missing.safetensors")


def test_train_and_resume_from_python(tiny_corpus_file, tmp_path):
    run = tmp_path / "run"
    result = charrnn.train(
        tiny_corpus_file,
        out=run,
        hidden=16,
        embedding=4,
        batch_size=4,
        seq_len=16,
        max_time=0,
        max_steps=6,
        seed=2,
    )
    assert result.steps == 6 and result.best_model.exists()
    # The same run from the command line is the same run: the weights agree exactly.
    cli_run = tmp_path / "cli"
    ok(
        CliRunner().invoke(
            cli, tiny_train_args(tiny_corpus_file, cli_run, "--max-steps", "6", "--seed", "2")
        )
    )
    assert (cli_run / "best.safetensors").read_bytes() != b""
    python_model, cli_model = charrnn.load(run), charrnn.load(cli_run)
    assert python_model.sample(length=30, seed=1) == cli_model.sample(length=30, seed=1)
    with pytest.raises(charrnn.CharRNNError, match="already holds a training run"):
        charrnn.train(tiny_corpus_file, out=run, hidden=16, max_steps=6, max_time=0)
    resumed = charrnn.resume(run)
    assert resumed.steps == 6


def _readme_python_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs_as_written(tmp_path):
    """In a folder of its own (it writes runs/quick), with the repository's data/ beside it."""
    (tmp_path / "data").symlink_to(ROOT / "data")
    script = tmp_path / "example.py"
    script.write_text(_readme_python_example(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ROMEO.")
    assert (tmp_path / "runs" / "quick" / "best.safetensors").exists()
