"""Devices and several processes: DDP over gloo trains the same model as one process.

One `torchrun --nproc_per_node 2` run (2 CPU processes, gloo) with batch 4 is
compared with one process and batch 4: each rank owns 2 of the same 4 streams,
so the two runs see the same characters at every step and must follow the same
loss trajectory, up to float32 sums taken in another order.
"""

import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.inference.sample import sample_text
from charrnn.model.modelfile import load_model
from charrnn.text.corpus import preprocess
from charrnn.training import checkpoint
from charrnn.training.batches import BatchStreams
from charrnn.training.rundir import METRICS_LOG, STEP_LOG, RunDir
from charrnn.training.runtime import ProcessGroup, Runtime, lost_peer, resolve_device
from charrnn.training.session import resume_run
from charrnn.training.trainer import TrainingInterrupted, train

REPO = Path(__file__).resolve().parents[1]
# Relative tolerance between 2 ranks x batch 2 and 1 rank x batch 4: the gradients are
# averaged by an all-reduce and the loss is a mean of two half-batch means, so float32
# rounding differs (~1e-7 measured); 1e-5 leaves room and still catches any real change
# (a wrong stream split or an unaveraged gradient moves the loss by > 1e-3).
TOLERANCE = 1e-5
STEPS = 20
ARGS = [
    "--hidden", "16", "--embedding", "4", "--batch-size", "4", "--seq-len", "8",
    "--dropout", "0", "--max-time", "0", "--max-steps", str(STEPS), "--eval-every", "10",
    "--checkpoint-every", "0", "--keep", "100", "--seed", "3",
    # float32 for TOLERANCE (auto would take bf16 on a CPU with native bfloat16)
    "--precision", "fp32",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_log(run: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (run / name).read_text().splitlines()]


def start_torchrun(*args: str, script: Path | None = None) -> subprocess.Popen:
    """`torchrun --nproc_per_node 2 -m charrnn ARGS` (or `SCRIPT ARGS`) on the CPU, one
    thread per process. torchrun runs in a process group of its own, the one a
    terminal's Ctrl-C would reach; it starts each worker in a session of its own."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        *([str(script)] if script else ["-m", "charrnn"]), *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )


def worker_ranks(launcher: subprocess.Popen) -> dict[int, int]:
    """torchrun's worker processes, rank -> pid (from /proc: their parent and RANK)."""
    ranks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # gone, or not ours to read
        if parent == launcher.pid:
            for item in environment:
                if item.startswith(b"RANK="):
                    ranks[int(item[5:])] = int(entry.name)
    return ranks


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def kill_all(launcher: subprocess.Popen) -> str:
    """Kill torchrun and its workers (each in a session of its own, so not in torchrun's
    process group); what torchrun had written to stderr."""
    workers = worker_ranks(launcher) if Path("/proc/self/stat").exists() else {}
    for pid in [launcher.pid, *workers.values()]:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    try:
        return launcher.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        return "(torchrun's stderr still held open)"


def finish(launcher: subprocess.Popen, seconds: float = 180) -> str:
    """Wait for torchrun; its stderr. A hang (a collective one rank never reaches)
    fails the test instead of blocking CI."""
    try:
        _, stderr = launcher.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        stderr = kill_all(launcher)
        pytest.fail(f"torchrun with 2 processes did not finish in {seconds} s:\n{stderr[-3000:]}")
    return stderr


def torchrun(*args: str) -> str:
    """Run `torchrun --nproc_per_node 2 -m charrnn ARGS` to success; its stderr."""
    launcher = start_torchrun(*args)
    stderr = finish(launcher)
    assert launcher.returncode == 0, stderr[-3000:]
    return stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_corpus_file):
    """(one-process run, two-process run, torchrun's stderr), trained on the tiny corpus."""
    root = tmp_path_factory.mktemp("ddp")
    one, two = root / "one", root / "two"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the torchrun workers (OMP_NUM_THREADS=1)
    try:
        single = CliRunner().invoke(
            cli, ["train", str(tiny_corpus_file), "--out", str(one), "-q", *ARGS]
        )
    finally:
        torch.set_num_threads(threads)
    assert single.exit_code == 0, single.output
    stderr = torchrun("train", str(tiny_corpus_file), "--out", str(two), *ARGS)
    return one, two, stderr


def assert_same_trajectory(expected: list[dict], actual: list[dict]) -> None:
    assert [r["step"] for r in actual] == [r["step"] for r in expected]
    for want, got in zip(expected, actual):
        assert got["lr"] == want["lr"]
        assert got["loss"] == pytest.approx(want["loss"], rel=TOLERANCE), got["step"]


def test_two_ranks_follow_the_loss_trajectory_of_one_rank_with_the_whole_batch(runs):
    one, two, _ = runs
    assert_same_trajectory(read_log(one, STEP_LOG), read_log(two, STEP_LOG))
    expected, actual = read_log(one, METRICS_LOG), read_log(two, METRICS_LOG)
    assert [r["step"] for r in actual] == [10, 20]
    for want, got in zip(expected, actual):
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=TOLERANCE)
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=TOLERANCE)
    weights_one, weights_two = load_model(one).model, load_model(two).model
    for (name, a), (_, b) in zip(
        weights_one.state_dict().items(), weights_two.state_dict().items()
    ):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name


def test_only_rank_zero_writes_and_reports(runs):
    _, two, stderr = runs
    assert stderr.count("training lstm 1x16") == 1
    assert stderr.count("step 20: val") == 1 and stderr.count("charrnn train") == 1
    assert len(read_log(two, STEP_LOG)) == STEPS  # one line per step, not one per rank
    state = RunDir(two).latest_state()
    assert state.meta["runtime"]["world_size"] == 2
    assert state.tensors["hidden.0"].shape == (1, 4, 16)  # all ranks' streams: (L, B, H)
    assert "rng.torch.rank1" in state.tensors


def test_a_model_written_under_ddp_loads_and_samples_in_one_process(runs, tmp_path):
    _, two, _ = runs
    alone = tmp_path / "model.safetensors"
    shutil.copyfile(two / "best.safetensors", alone)  # a model file alone is enough
    loaded = load_model(alone)
    assert all(v.dtype == torch.float32 for v in loaded.model.state_dict().values())
    (text,) = sample_text(loaded.model, loaded.vocab, "First", length=40, seed=1)
    assert text.startswith("First") and len(text) == 45
    sampling = ["sample", "--model", str(two), "--length", "20", "--seed", "1"]
    result = CliRunner().invoke(cli, sampling)
    assert result.exit_code == 0 and len(result.stdout) >= 20


def test_a_ddp_state_resumes_in_one_process_on_the_same_trajectory(runs, tmp_path):
    one, two, _ = runs
    run = tmp_path / "run"
    shutil.copytree(two, run)
    for path in RunDir(run).state_files():  # as if the two processes were killed at step 10
        if checkpoint.load_state(path).meta["loop"]["step"] > 10:
            path.unlink()
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "-q", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert_same_trajectory(read_log(one, STEP_LOG), read_log(run, STEP_LOG))
    assert RunDir(run).latest_state().meta["runtime"]["world_size"] == 1


def test_with_dropout_two_ranks_stopped_and_resumed_repeat_the_run_exactly(
    runs, tmp_path, tiny_corpus_file
):
    """Each rank draws its own dropout masks, and its RNG state is in the training state:
    a 2-process run cut at step 10 and resumed with 2 processes is the uncut run."""
    _, no_dropout, _ = runs
    whole, split = tmp_path / "whole", tmp_path / "split"
    args = [*ARGS, "--dropout", "0.3"]  # the later option wins
    torchrun("train", str(tiny_corpus_file), "--out", str(whole), *args)
    assert RunDir(whole).latest_state().meta["model_config"]["dropout"] == 0.3
    # Dropout was at work: the loss is not that of the same run without it.
    assert read_log(whole, STEP_LOG)[1]["loss"] != read_log(no_dropout, STEP_LOG)[1]["loss"]
    shutil.copytree(whole, split)
    for path in RunDir(split).state_files():  # as if both processes were killed at step 10
        if checkpoint.load_state(path).meta["loop"]["step"] > 10:
            path.unlink()
    torchrun("train", "--resume", str(split), "-q")
    assert (split / STEP_LOG).read_bytes() == (whole / STEP_LOG).read_bytes()
    ours, theirs = RunDir(split).latest_state(), RunDir(whole).latest_state()
    for name, value in theirs.group("model").items():
        assert torch.equal(ours.group("model")[name], value), name


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers in /proc")
@pytest.mark.parametrize("whom", ["rank 0", "all"], ids=["sigterm-to-rank-0", "ctrl-c"])
def test_a_signal_stops_every_rank_with_one_save_and_one_message(tmp_path, tiny_corpus_file, whom):
    """SIGTERM to rank 0 alone: its stop request reaches rank 1 through the broadcast.
    Ctrl-C: SIGINT to torchrun's process group (a terminal's Ctrl-C), which torchrun
    forwards to each worker, and to each worker directly (a terminal whose process group
    holds the workers too): a repeat that soon is the same request, not a second Ctrl-C."""
    run = tmp_path / "run"
    args = [*ARGS, "--max-steps", "1000000", "--checkpoint-every", "0.2", "--keep", "2"]
    launcher = start_torchrun("train", str(tiny_corpus_file), "--out", str(run), *args)
    deadline = time.monotonic() + 120
    workers = {}
    while len(workers) < 2 or not any(
        s.name != "step-00000000.safetensors" for s in RunDir(run).state_files()
    ):  # both ranks training, a state saved on the clock
        if launcher.poll() is not None or time.monotonic() > deadline:
            pytest.fail("training did not get under way: " + kill_all(launcher)[-3000:])
        workers = worker_ranks(launcher)
        time.sleep(0.05)
    periodic = RunDir(run).latest_state().meta["loop"]["step"]
    if whom == "rank 0":
        os.kill(workers[0], signal.SIGTERM)
    else:
        os.killpg(launcher.pid, signal.SIGINT)
        for pid in workers.values():
            os.kill(pid, signal.SIGINT)
    stderr = finish(launcher, 60)
    assert not any(alive(pid) for pid in workers.values()), stderr[-3000:]
    stopped = re.findall(r"stopped at step (\d+); continue with: charrnn train --resume", stderr)
    assert len(stopped) == 1, stderr[-3000:]  # rank 0's message, once
    assert "interrupted;" not in stderr  # not a second Ctrl-C
    assert not [line for line in stderr.splitlines() if line.startswith("Error:")]
    step = int(stopped[0])
    state = RunDir(run).latest_state()  # the stop's save, all ranks' carried state in it
    assert state.meta["loop"]["step"] == step > periodic
    assert state.meta["runtime"]["world_size"] == 2 and "rng.torch.rank1" in state.tensors
    assert [r["step"] for r in read_log(run, STEP_LOG)] == list(range(1, step + 1))


FAILING_RANK_1 = """
from charrnn.cli import cli
from charrnn.errors import CharRNNError
from charrnn.training.trainer import Trainer

step = Trainer._step

def failing_step(self, lr):
    if self.group.rank == 1 and self.loop.step == 3:
        raise CharRNNError("a fault planted in rank 1")
    return step(self, lr)

Trainer._step = failing_step
cli(prog_name="charrnn")
"""


def test_an_error_in_one_rank_ends_the_run_with_one_line_naming_it(tmp_path, tiny_corpus_file):
    script = tmp_path / "failing_rank_1.py"
    script.write_text(FAILING_RANK_1)
    run = tmp_path / "run"
    args = ["train", str(tiny_corpus_file), "--out", str(run), "-q", *ARGS]
    launcher = start_torchrun(*args, script=script)
    stderr = finish(launcher, 120)  # the others do not wait for the failed rank forever
    assert launcher.returncode != 0
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: rank 1: a fault planted in rank 1"], stderr[-3000:]
    # Rank 0, whose collective failed with it, says so in a line, not a traceback.
    assert "rank 0: stopped, as another process of the run did (" in stderr, stderr[-3000:]
    assert "[rank0]: Traceback" not in stderr
    # What was saved before the error is complete and good.
    assert RunDir(run).latest_state().meta["loop"]["step"] <= 3


def test_each_rank_reads_its_own_rows_of_the_one_process_layout():
    ids = np.arange(1000, dtype=np.uint16)
    whole = BatchStreams(ids, 4, 8)
    halves = [BatchStreams(ids, 4, 8, ProcessGroup(rank, 2).rows(4)) for rank in (0, 1)]
    for _ in range(40):  # across an epoch boundary
        x, y, new_epoch = whole.next()
        parts = [half.next() for half in halves]
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
        assert all(p[2] == new_epoch for p in parts)


def test_a_batch_that_does_not_split_over_the_ranks_is_refused():
    with pytest.raises(CharRNNError, match="--batch-size 5 does not split evenly over 2"):
        ProcessGroup(0, 2).rows(5)


def test_device_auto_is_cuda_when_present_else_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--device", "cuda"], "--device cuda: no CUDA device is available"),
        (["--device", "cpu", "--precision", "fp16"], "--precision fp16 needs a CUDA device"),
    ],
)
def test_a_device_or_precision_this_machine_lacks_is_one_clear_line(
    tmp_path, tiny_corpus_file, options, message
):
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(tiny_corpus_file), "--out", str(run), *options])
    assert result.exit_code == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not run.exists()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_saves_float32_and_resumes_in_fp32(
    tmp_path, tiny_corpus_file, precision
):
    # The CLI offers fp16 on CUDA only and bf16 where it is native, but the code path
    # (autocast, GradScaler) is the same on any CPU, where the vanilla RNN (unlike
    # oneDNN's LSTM) runs bf16 and fp16 even without native support.
    prepared = preprocess(tiny_corpus_file, tmp_path / "data", DataConfig())
    model = ModelConfig(vocab_size=len(prepared.vocab), cell="rnn", hidden=16, embedding=4)
    config = TrainConfig(
        max_time=0, max_steps=12, batch_size=4, seq_len=8, seed=2, checkpoint_every=0
    )
    train(prepared, model, config, tmp_path / "fp32")
    mixed = Runtime(torch.device("cpu"), precision)
    with pytest.raises(TrainingInterrupted):
        stop_at_6 = iter([False] * 6 + [True]).__next__
        train(prepared, model, config, tmp_path / "run", should_stop=stop_at_6, runtime=mixed)
    state = RunDir(tmp_path / "run").latest_state()
    assert state.meta["runtime"]["precision"] == precision
    assert ("grad_scaler" in state.meta) == (precision == "fp16")
    assert state.tensors["hidden.0"].dtype == torch.float32  # (L, B, H), whatever autocast gave
    assert all(v.dtype == torch.float32 for v in state.group("model").values())
    # Autocast really ran: the first loss differs from fp32's, by rounding only.
    first_mixed = read_log(tmp_path / "run", STEP_LOG)[0]["loss"]
    first_fp32 = read_log(tmp_path / "fp32", STEP_LOG)[0]["loss"]
    assert first_mixed != first_fp32 and first_mixed == pytest.approx(first_fp32, rel=2e-2)

    result = resume_run(tmp_path / "run", runtime=Runtime()).run()  # the same run, now in fp32
    assert result.steps == 12 and math.isfinite(result.best_val_nats)
    assert all(math.isfinite(r["loss"]) for r in read_log(tmp_path / "run", STEP_LOG))
    loaded = load_model(tmp_path / "run")
    assert all(v.dtype == torch.float32 for v in loaded.model.state_dict().values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.real_precision  # bf16 by name needs the GPU's own answer
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda_saves_a_float32_model_that_loads_on_the_cpu(
    tmp_path, tiny_corpus_file, precision
):
    run = tmp_path / "run"
    args = ["train", str(tiny_corpus_file), "--out", str(run), "-q", *ARGS]
    result = CliRunner().invoke(cli, [*args, "--device", "cuda", "--precision", precision])
    assert result.exit_code == 0, result.output
    loaded = load_model(run)
    assert all(v.device.type == "cpu" for v in loaded.model.state_dict().values())
    assert all(v.dtype == torch.float32 for v in loaded.model.state_dict().values())
    assert read_log(run, METRICS_LOG)[-1]["val_loss"] < 4.0


def test_a_collective_failing_for_a_lost_peer_is_told_from_other_errors():
    gloo = RuntimeError(
        "[/__w/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by "
        "peer [127.0.0.1]:23961. This is typically caused by a remote worker crashing."
    )
    assert lost_peer(gloo) == "Connection closed by peer [127.0.0.1]:23961"
    assert lost_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
