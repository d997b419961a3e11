"""The run directory: claiming, publishing models, states, logs, finding a model's run."""

from dataclasses import asdict

import pytest
import torch

from charrnn.config import ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.model.modelfile import load_model
from charrnn.model.network import CharRNN
from charrnn.text.vocab import Vocabulary
from charrnn.training import checkpoint
from charrnn.training.rundir import RunDir, find_run
from charrnn.training.runtime import Runtime
from charrnn.training.schedule import LoopState


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=3, hidden=4, embedding=2))


VOCAB = Vocabulary(("a", "b", "c"))


def save(run: RunDir, step: int, keep: int = 2) -> None:
    """A complete training state of a tiny model at `step`."""
    model = CharRNN(ModelConfig(vocab_size=3, hidden=4, embedding=2))
    runtime = Runtime()
    meta = {
        "model_config": model.config.to_dict(),
        "train_config": asdict(TrainConfig()),
        "corpus_dir": str(run.data_dir),
        "vocab": list(VOCAB.chars),
        "loop": asdict(LoopState(step=step)),
    }
    optimizer = torch.optim.AdamW(model.parameters())
    meta, tensors = checkpoint.capture(
        meta, model, optimizer, runtime.grad_scaler(), None, runtime.group, runtime.device
    )
    run.save_state(step, meta, tensors, keep)


def test_a_run_is_refused_then_deleted_with_force(tmp_path, model):
    run = RunDir(tmp_path / "run")
    run.claim()  # nothing there yet
    run.tidy()
    save(run, 7)
    run.publish_model(model, VOCAB, {}, step=7, val_nats=1.0, best=True, keep=2)
    run.log_metrics({"step": 7})
    (run.data_dir / "ids.npy").parent.mkdir()
    (run.data_dir / "ids.npy").write_bytes(b"ids")
    with pytest.raises(CharRNNError, match=r"step 7\).*--resume .*--force"):
        run.claim()
    run.claim(force=True)
    assert not run.holds_run() and not run.metrics_log.exists()
    assert (run.data_dir / "ids.npy").exists()  # a prepared corpus is reused, not a run


def test_tidy_removes_what_killed_writers_left(tmp_path):
    run = RunDir(tmp_path / "run")
    for folder in (run.path, run.state_dir, run.models_dir, run.data_dir):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".x.safetensors.abc.tmp").write_bytes(b"partial")
    (run.path / "notes.tmp").write_text("a user's file")
    assert run.tidy() == 4
    assert [p.name for p in run.path.rglob("*.tmp")] == ["notes.tmp"]


def test_states_newest_first_pruned_to_keep_damaged_passed_over(tmp_path):
    run = RunDir(tmp_path)
    for step in (1, 2, 10, 3):
        save(run, step, keep=3)
    assert [p.name for p in run.state_files()] == [
        "step-00000010.safetensors",
        "step-00000003.safetensors",
        "step-00000002.safetensors",
    ]
    run.state_path(11).write_bytes(b"damaged")
    skipped = []
    assert run.latest_state(skipped).meta["loop"]["step"] == 10
    assert len(skipped) == 1 and "step-00000011" in skipped[0]


def test_published_models_last_best_and_pruning(tmp_path, model):
    run = RunDir(tmp_path)
    losses = {10: 2.0, 20: 1.5, 30: 1.7, 40: 1.8}
    for step, nats in losses.items():
        best = nats == min(v for s, v in losses.items() if s <= step)
        named = run.publish_model(
            model, VOCAB, {"step": step}, step=step, val_nats=nats, best=best, keep=2
        )
    assert named.name == "step-00000040-val1.8000.safetensors"
    assert run.last_model.read_bytes() == named.read_bytes()
    assert load_model(run.best_model).info["step"] == 20
    # the two newest, and the best
    assert [p.name[:13] for p in run.model_files()] == [
        "step-00000040",
        "step-00000030",
        "step-00000020",
    ]


def test_cutting_the_logs_keeps_earlier_steps_and_appending_goes_on(tmp_path):
    run = RunDir(tmp_path)
    for step in range(1, 6):
        run.log_step({"step": step, "loss": 1.0, "lr": 0.1})
    for step in (2, 4):
        run.log_metrics({"step": step, "val_loss": 1.0})
    run.cut_logs(3)  # with lines still buffered
    run.log_step({"step": 4, "loss": 0.5, "lr": 0.05})
    run.close()
    assert [r["step"] for r in run.steps()] == [1, 2, 3, 4]
    assert run.steps()[-1]["loss"] == 0.5
    assert [r["step"] for r in run.metrics()] == [2]
    run.cut_logs(1, metrics=False)  # a rollback keeps its validations
    assert [r["step"] for r in run.steps()] == [1] and len(run.metrics()) == 1


def test_the_run_of_a_model_file(tmp_path, model):
    run = RunDir(tmp_path / "run")
    named = run.publish_model(model, VOCAB, {}, step=1, val_nats=1.0, best=True, keep=2)
    assert find_run(run.path, run.best_model) is None  # no metrics log yet
    run.log_metrics({"step": 1})
    for path, model_path in [
        (run.path, run.best_model),
        (run.best_model, run.best_model),
        (named, named),
    ]:
        assert find_run(path, model_path).path == run.path
