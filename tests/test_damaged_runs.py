"""Damaged run directories: a log with bad lines, a state from another run, a prepared
corpus deleted or changed since, a state file that lies about its model."""

import json
import math
import shutil
import struct

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import FaultCollector, fails, ok, tiny_train_args

from charrnn.cli import cli
from charrnn.errors import ModelFileError
from charrnn.training import checkpoint
from charrnn.training.rundir import RunDir
from charrnn.training.runtime import Runtime
from charrnn.training.session import resume_run


def one_line(result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def stopped_run(tmp_path, tiny_corpus_file):
    """A tiny run of 4 steps, a state after each (the newest 3 kept): resuming it cuts
    the logs back to its newest state and finds its budget spent."""
    run = tmp_path / "run"
    args = tiny_train_args(tiny_corpus_file, run, "--max-steps", "4", "--eval-every", "2")
    ok(CliRunner().invoke(cli, [*args, "--checkpoint-every", "0", "--keep", "3"]))
    return run


def resume_args(run) -> list[str]:
    return ["train", "--resume", str(run), "-q"]


def test_damaged_metrics_lines_are_skipped_with_a_warning_and_kept(stopped_run):
    log = stopped_run / "metrics.jsonl"
    good = log.read_text().splitlines()
    assert [json.loads(line)["step"] for line in good] == [2, 4]
    damage = ["\x00\x01 not json", '{"step": "three"}', "[1, 2]"]
    log.write_text("\n".join([good[0], *damage, good[1]]) + "\n")
    runner = CliRunner()

    result = ok(runner.invoke(cli, ["info", str(stopped_run), "--json"]))
    assert [r["step"] for r in json.loads(result.stdout)["history"]] == [2, 4]
    warning = one_line(result)
    assert warning.startswith(f"warning: {log}: 3 damaged line(s) skipped (line 2, 3, 4)")

    result = ok(runner.invoke(cli, resume_args(stopped_run)))
    assert f"{log}: 3 damaged line(s) skipped" in result.stderr
    lines = log.read_text().splitlines()
    assert lines[:5] == [good[0], *damage, good[1]]  # nothing lost, nothing moved
    assert [r["step"] for r in RunDir(stopped_run).metrics()] == [2, 4]


def test_a_cut_short_last_line_is_dropped_silently_on_resume(stopped_run):
    log = stopped_run / "steps.jsonl"
    log.write_text(log.read_text() + '{"step": 5, "lo')
    result = ok(CliRunner().invoke(cli, resume_args(stopped_run)))
    assert "damaged" not in result.stderr
    assert [r["step"] for r in RunDir(stopped_run).steps()] == [1, 2, 3, 4]


def test_a_state_from_another_run_is_refused_in_one_line(tmp_path, tiny_corpus_file, stopped_run):
    other = tmp_path / "other"
    ok(CliRunner().invoke(cli, tiny_train_args(tiny_corpus_file, other, "--max-steps", "2")))
    stranger = RunDir(stopped_run).state_path(99)
    shutil.copyfile(RunDir(other).state_files()[0], stranger)
    result = fails(CliRunner().invoke(cli, resume_args(stopped_run)), "another run")
    assert str(stranger) in one_line(result) and "move it out of" in result.stderr
    stranger.unlink()
    ok(CliRunner().invoke(cli, resume_args(stopped_run)))  # its own states still resume


def test_a_deleted_prepared_corpus_is_refused_in_one_line(stopped_run):
    shutil.rmtree(stopped_run / "data")
    result = fails(CliRunner().invoke(cli, resume_args(stopped_run)), "prepared corpus is gone")
    one_line(result)


def test_a_changed_prepared_corpus_is_refused_in_one_line(stopped_run):
    state = RunDir(stopped_run).latest_state()
    ids_path = stopped_run / "data" / "ids.npy"
    ids = np.load(ids_path)
    first = int(np.flatnonzero(ids != ids[0])[0])
    ids[[0, first]] = ids[[first, 0]]  # same characters, same vocabulary, other text
    np.save(ids_path, ids)
    result = fails(CliRunner().invoke(cli, resume_args(stopped_run)), "changed since")
    assert f"step {state.meta['loop']['step']}" in one_line(result)
    ids[[0, first]] = ids[[first, 0]]
    np.save(ids_path, ids)
    ok(CliRunner().invoke(cli, resume_args(stopped_run)))  # the same text again: resumes


def rewrite_state(path, edit_meta=None, edit_tensors=None) -> None:
    """Write the state at `path` again with its JSON or tensors changed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(path, "pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        metadata = handle.metadata()
    meta = json.loads(metadata["state"])
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, path, metadata={**metadata, "state": json.dumps(meta)})


def test_a_state_asking_for_a_huge_model_or_holding_nan_is_passed_over(stopped_run):
    """Each is refused from its header (or its values), named, and the run resumes
    from the state before it."""
    run = RunDir(stopped_run)
    newest, older = run.state_files()[:2]
    huge = lambda meta: meta["model_config"].update(hidden=300000, layers=64)  # noqa: E731
    rewrite_state(newest, edit_meta=huge)
    with pytest.raises(ModelFileError, match="hidden must be between 1 and 65,536"):
        checkpoint.load_state(newest)
    rewrite_state(
        older, edit_tensors=lambda t: t["model.rnn.weight_hh_l0"].view(-1).__setitem__(3, math.nan)
    )
    with pytest.raises(ModelFileError, match="model.rnn.weight_hh_l0 holds non-finite"):
        checkpoint.load_state(older)
    told = FaultCollector()
    trainer = resume_run(stopped_run, runtime=Runtime(), reporter=told)
    assert trainer.loop.step == 2  # the third newest state
    assert len(told.messages) == 2 and "hidden" in told.messages[0]
    assert "weight_hh_l0" in told.messages[1]


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda t: t.pop("optim.0.exp_avg"), "optimizer moments incomplete"),
        (lambda t: t.update({"hidden.0": torch.zeros(1, 3, 16)}), "hidden.0"),
        (lambda t: t.update({"rng.numpy_keys": torch.zeros(3, dtype=torch.int64)}), "numpy"),
        (lambda t: t.update({"surprise": torch.zeros(1)}), "unexpected tensor surprise"),
        (lambda t: t.update({"rng.torch": torch.zeros(7, dtype=torch.uint8)}), "RNG state"),
    ],
)
def test_state_tensors_that_do_not_fit_the_run_are_refused(stopped_run, damage, said):
    newest = RunDir(stopped_run).state_files()[0]
    rewrite_state(newest, edit_tensors=damage)
    with pytest.raises(ModelFileError, match=said) as info:
        checkpoint.load_state(newest)
    assert "\n" not in str(info.value) and str(newest) in str(info.value)


@pytest.mark.parametrize(
    "edit, said",
    [
        (lambda m: m["train_config"].update(batch_size="4"), "batch_size is str"),
        (lambda m: m["train_config"].update(batch_size=4.5), "batch_size is float"),
        (lambda m: m["loop"].update(step=None), "step is NoneType"),
        (lambda m: m.pop("corpus_dir"), "corpus_dir missing"),
        (lambda m: m["rng"]["python"].__setitem__(1, [1, 2]), "RNG state"),
        (lambda m: m["optim_groups"][0].update(params=[0]), "optimizer groups"),
    ],
)
def test_state_json_that_would_fail_later_is_refused_now(stopped_run, edit, said):
    newest = RunDir(stopped_run).state_files()[0]
    rewrite_state(newest, edit_meta=edit)
    with pytest.raises(ModelFileError, match=said):
        checkpoint.load_state(newest)


def test_trailing_bytes_after_a_state_are_refused(stopped_run):
    newest = RunDir(stopped_run).state_files()[0]
    newest.write_bytes(newest.read_bytes() + b"junk")
    with pytest.raises(ModelFileError, match="the file holds"):
        checkpoint.load_state(newest)
    (length,) = struct.unpack("<Q", newest.read_bytes()[:8])
    assert length < 1 << 20
