"""Training chooses its torch thread count by timing (trainer.THREAD_*): the count must
not change the results, and a run leaves the count as it found it."""

from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from charrnn.config import ModelConfig, TrainConfig
from charrnn.inference.blas_threads import candidate_counts
from charrnn.model.network import CharRNN
from charrnn.text.corpus import load_prepared
from charrnn.training.rundir import RunDir
from charrnn.training.trainer import Trainer, train


def losses_and_weights(threads: int, cell: str, output: str, bf16: bool):
    """Five AdamW steps of a 1x256 model on random text with `threads` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        config = ModelConfig(
            vocab_size=40, cell=cell, hidden=256, embedding=16, output=output,
            cutoffs=(8,) if output == "adaptive" else (),
        )  # fmt: skip
        model = CharRNN(config)
        ids = torch.randint(0, 40, (16, 33))
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-3, fused=True)
        losses = []
        for _ in range(5):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                if output == "adaptive":
                    log_p, _ = model(ids[:, :-1], targets=ids[:, 1:])
                    loss = -log_p.mean()
                else:
                    logits, _ = model(ids[:, :-1])
                    loss = F.cross_entropy(logits.reshape(-1, 40).float(), ids[:, 1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses, [p.detach().clone() for p in model.parameters()]
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one torch thread: nothing to compare")
@pytest.mark.parametrize(
    ("cell", "output", "bf16"),
    [
        ("lstm", "softmax", False),
        ("gru", "softmax", False),
        ("rnn", "softmax", False),
        ("rnn", "softmax", True),  # bf16 autocast runs the vanilla RNN on any CPU
    ],
)
def test_one_thread_and_two_compute_the_same_bits(cell, output, bf16):
    one_losses, one_weights = losses_and_weights(1, cell, output, bf16)
    two_losses, two_weights = losses_and_weights(2, cell, output, bf16)
    assert one_losses == two_losses
    assert all(torch.equal(a, b) for a, b in zip(one_weights, two_weights))


def test_a_run_leaves_the_thread_count_as_it_found_it(tmp_path, tiny_run):
    _, result = tiny_run  # trained with the thread count timed
    before = torch.get_num_threads()
    prepared = load_prepared(result.out_dir / "data")
    config = ModelConfig(vocab_size=len(prepared.vocab), hidden=32, embedding=8)
    steps = TrainConfig(max_time=0, max_steps=40, batch_size=8, seq_len=32, seed=1)
    torch.set_num_threads(1)  # one count only: nothing is timed
    try:
        fixed = train(prepared, config, steps, tmp_path / "fixed")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    # the timed run and the one-thread run took the same steps
    timed = [r["loss"] for r in RunDir(result.out_dir).steps()]
    assert timed == [r["loss"] for r in RunDir(fixed.out_dir).steps()]


def test_an_adaptive_model_keeps_the_thread_count(tmp_path, tiny_run):
    """Its results depend on the count (1e-7 after five steps, on a Zen 4): not timed."""
    one, two = (losses_and_weights(n, "lstm", "adaptive", False)[0] for n in (1, 2))
    assert one[0] == two[0]  # the first step's forward pass agrees; later ones need not
    _, result = tiny_run
    prepared = load_prepared(result.out_dir / "data")
    config = ModelConfig(
        vocab_size=len(prepared.vocab), hidden=16, embedding=4, output="adaptive", cutoffs=(8,)
    )
    trainer = Trainer(prepared, config, TrainConfig(max_time=0, max_steps=2), tmp_path / "a")
    assert trainer._thread_tuner().counts == [torch.get_num_threads()]
    trainer.rundir.close()
    softmax = Trainer(
        prepared, replace(config, output="softmax", cutoffs=()), trainer.config, tmp_path / "s"
    )
    assert softmax._thread_tuner().counts == candidate_counts(torch.get_num_threads())
    softmax.rundir.close()
