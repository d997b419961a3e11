"""One process at a time writes a run directory: the lock, races, a killed holder, readers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import fails, ok, tiny_train_args

import charrnn
from charrnn.cli import cli
from charrnn.errors import CharRNNError
from charrnn.training.rundir import RunDir
from charrnn.training.session import start_run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs are locked with flock")

IN_USE = re.compile(r"^Error: .* is in use by another charrnn process \(pid (\d+)\); ")

# -- the lock in one process ---------------------------------------------------------


def test_a_second_rundir_cannot_take_the_lock_until_the_first_releases_it(tmp_path):
    first, second = RunDir(tmp_path / "run"), RunDir(tmp_path / "run")
    first.lock()
    first.lock()  # held already: nothing happens
    assert first.locked and first.lock_file.read_text().strip() == str(os.getpid())
    with pytest.raises(
        CharRNNError, match=rf"in use by another charrnn process \(pid {os.getpid()}"
    ):
        second.lock()
    with pytest.raises(CharRNNError, match="in use"):
        second.tidy()  # no deleting another writer's temporaries
    first.close()
    assert not first.locked and not first.lock_file.exists()
    second.lock()
    assert second.locked
    second.unlock()


def test_a_lock_file_left_by_a_dead_holder_is_taken(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.lock_file.write_text("999999999\n")  # what SIGKILL leaves: the file, no lock
    run.lock()
    assert run.lock_file.read_text().strip() == str(os.getpid())
    run.unlock()


def test_an_abandoned_attempt_removes_only_what_it_made(tmp_path):
    made = RunDir(tmp_path / "runs" / "new")
    made.lock()
    made.data_dir.mkdir()
    made.abandon()
    assert not (tmp_path / "runs").exists()  # the parent it made too, being empty
    earlier = RunDir(tmp_path / "earlier")
    (earlier.path / "data").mkdir(parents=True)
    earlier.best_model.write_bytes(b"a model")
    earlier.lock()
    earlier.step_log.write_text("")
    earlier.abandon()
    assert sorted(p.name for p in earlier.path.iterdir()) == ["best.safetensors", "data"]
    assert not earlier.locked


def test_a_failed_start_releases_the_lock(tmp_path, tiny_corpus_file):
    out = tmp_path / "run"
    with pytest.raises(CharRNNError, match="no such file"):
        start_run(tmp_path / "nosuch.txt", out)
    with pytest.raises(CharRNNError, match="unknown model setting"):
        start_run(tiny_corpus_file, out, model={"hiden": 8})
    RunDir(out).lock()  # not held by a leftover


def test_train_twice_in_one_process_on_the_same_directory(tmp_path, tiny_corpus_file):
    settings = {"hidden": 8, "embedding": 4, "batch_size": 4, "seq_len": 16, "max_steps": 3}
    for _ in range(2):
        result = charrnn.train(tiny_corpus_file, tmp_path / "run", force=True, **settings)
        assert result.steps == 3
    assert not RunDir(tmp_path / "run").lock_file.exists()
    resumed = charrnn.resume(tmp_path / "run")  # finished: returns at once, unlocked after
    assert resumed.steps == 3 and not RunDir(tmp_path / "run").lock_file.exists()


# -- processes -------------------------------------------------------------------------

# Runs `charrnn ARGS` once per line read from stdin (the same moment for both racers)
# and answers each with a JSON line: its exit code, its stderr, its pid. One torch
# import per racer, not one per round.
RACER = """
import json, os, sys
import torch
from click.testing import CliRunner
from charrnn.cli import cli
torch.set_num_threads(1)
args = sys.argv[1:]
for line in sys.stdin:
    result = CliRunner().invoke(cli, [*args, "--out", line.strip()])
    print(json.dumps([result.exit_code, result.stderr, os.getpid()]), flush=True)
"""

ROUNDS = 20


def test_two_processes_started_together_one_trains_the_other_is_told(tmp_path, tiny_corpus_file):
    args = ["train", str(tiny_corpus_file), "-q", "--hidden", "8", "--embedding", "4"]
    args += ["--batch-size", "4", "--seq-len", "16", "--max-time", "0", "--max-steps", "5"]
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        winners = 0
        for round_ in range(ROUNDS):
            out = tmp_path / f"race-{round_}"
            for racer in racers:
                racer.stdin.write(f"{out}\n")
                racer.stdin.flush()
            answers = sorted(json.loads(racer.stdout.readline()) for racer in racers)
            (won, _, winner_pid), (lost, told, _) = answers
            assert (won, lost) == (0, 1), answers
            assert len(told.strip().splitlines()) == 1
            assert IN_USE.match(told).group(1) == str(winner_pid), told
            assert [r["step"] for r in RunDir(out).steps()] == [1, 2, 3, 4, 5]
            assert not RunDir(out).lock_file.exists()
            winners += 1
        assert winners == ROUNDS
    finally:
        for racer in racers:
            racer.stdin.close()
            racer.wait(timeout=60)


def lock_is_held(run: Path) -> bool:
    try:
        probe = RunDir(run)
        probe.lock()
    except CharRNNError:
        return True
    probe.unlock()  # not started yet: give it back at once
    return False


@pytest.fixture
def live_run(tmp_path, tiny_corpus_file):
    """A `charrnn train` process in the middle of its run (a model published, the lock
    held): (process, run directory). Killed (SIGKILL) at the end."""
    run = tmp_path / "run"
    args = tiny_train_args(tiny_corpus_file, run, "--hidden", "8", "--max-steps", "0")
    args += ["--max-time", "60", "--eval-every", "5", "--sample-chars", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "charrnn", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 60
    try:
        while not (RunDir(run).best_model.exists() and RunDir(run).lock_file.exists()):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no model published in 60 s"
            time.sleep(0.05)
        yield proc, run
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()


def test_a_live_run_is_refused_to_force_and_resume_and_readable_by_all(
    live_run, runner, tiny_corpus_file
):
    proc, run = live_run
    assert lock_is_held(run)
    before = sorted(p.name for p in run.iterdir())
    for args in (
        tiny_train_args(tiny_corpus_file, run, "--force"),
        ["train", "--resume", str(run)],
        ["train", "--resume", str(run), "--max-steps", "3"],
    ):
        result = fails(runner.invoke(cli, args), f"(pid {proc.pid})")
        assert IN_USE.match(result.stderr) and len(result.stderr.strip().splitlines()) == 1
    assert RunDir(run).best_model.exists() and RunDir(run).state_files()
    assert set(before) <= {p.name for p in run.iterdir()}  # nothing deleted
    sampled = ok(runner.invoke(cli, ["sample", "-m", str(run), "-n", "20", "--seed", "1"]))
    assert sampled.stdout
    info = ok(runner.invoke(cli, ["info", str(run)]))
    assert "1 layer(s) x 8 units" in info.stdout and "metrics log" in info.stdout
    assert proc.poll() is None  # still training, undisturbed


def test_a_killed_holder_leaves_no_stale_lock(live_run, runner, tiny_corpus_file):
    proc, run = live_run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert RunDir(run).lock_file.exists()  # the file stays; the lock died with the process
    ok(runner.invoke(cli, ["train", "--resume", str(run), "--max-steps", "2"]))
    ok(runner.invoke(cli, tiny_train_args(tiny_corpus_file, run, "--force", "--hidden", "8")))
    assert [r["step"] for r in RunDir(run).steps()][-1] == 8
