"""What one training step does to the weights: the learning rate of the schedule,
gradient clipping at --grad-clip, and AdamW with the README's settings, each checked
against an independent reference (the schedule by hand, the gradient the step would
have used without clipping, torch's own AdamW replayed on the same gradients)."""

import pytest
import torch

from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.model.layout import decayed_weights
from charrnn.text.corpus import preprocess
from charrnn.training.rundir import RunDir
from charrnn.training.schedule import warmup_cosine
from charrnn.training.trainer import Trainer


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_corpus_file):
    return preprocess(tiny_corpus_file, tmp_path_factory.mktemp("data"), DataConfig())


class Recorded:
    """What the optimizer was given at each of its steps: the learning rate, the
    gradients it applied (after clipping) and, once, the weights before training."""

    def __init__(self, trainer: Trainer):
        self.lrs, self.grads = [], []
        self.before = [p.detach().clone() for p in trainer.model.parameters()]
        self.trainer = trainer
        step = trainer.optimizer.step

        def recording_step(*args, **kwargs):
            params = list(trainer.model.parameters())
            self.lrs.append(trainer.optimizer.param_groups[0]["lr"])
            self.grads.append([p.grad.detach().clone() for p in params])
            return step(*args, **kwargs)

        trainer.optimizer.step = recording_step


def run(prepared, tmp_path, name, **settings):
    """Train a 1x16 LSTM with `settings`; return (trainer, what its optimizer got)."""
    model = ModelConfig(vocab_size=len(prepared.vocab), hidden=16, embedding=4)
    config = TrainConfig(
        **{"max_time": 0, "batch_size": 4, "seq_len": 16, "seed": 4, "sample_chars": 0, **settings}
    )
    trainer = Trainer(prepared, model, config, tmp_path / name)
    recorded = Recorded(trainer)
    trainer.run()
    return trainer, recorded


def global_norm(grads) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


def test_each_step_is_taken_at_the_scheduled_learning_rate(prepared, tmp_path):
    trainer, recorded = run(prepared, tmp_path, "run", max_steps=40, lr=1e-2, warmup_steps=4)
    # Step s (from 1) is taken with s-1 steps done and (s-1)/40 of the budget used; the
    # cosine runs from the first step, under the warm-up: lr * warm * (0.05 + 0.475 *
    # (1 + cos(pi * used))), cos(0.025 pi) = 0.9969173, cos(0.075 pi) = 0.9723699.
    by_hand = {1: 1e-2 / 4, 2: 1e-2 / 2 * 0.9985357, 4: 1e-2 * 0.9868757, 21: 1e-2 * 0.525}
    for step, lr in by_hand.items():
        assert recorded.lrs[step - 1] == pytest.approx(lr, rel=1e-6), step
    expected = [warmup_cosine(trainer.config, s, s / 40) for s in range(40)]
    assert recorded.lrs == pytest.approx(expected, rel=1e-12)
    assert [r["lr"] for r in RunDir(tmp_path / "run").steps()] == recorded.lrs
    # the last step: cos(0.975 pi) = -cos(0.025 pi) = -0.9969173
    assert recorded.lrs[-1] == pytest.approx(1e-2 * (0.05 + 0.475 * (1 - 0.9969173)), rel=1e-6)


def test_a_step_clips_the_gradient_to_the_configured_norm(prepared, tmp_path):
    _, unclipped = run(prepared, tmp_path, "free", max_steps=1, grad_clip=1e6)
    raw = unclipped.grads[0]
    raw_norm = global_norm(raw)
    assert raw_norm > 1e-2  # so a clip at 1e-3 has work to do
    _, clipped = run(prepared, tmp_path, "clipped", max_steps=1, grad_clip=1e-3)
    assert global_norm(clipped.grads[0]) == pytest.approx(1e-3, rel=1e-4)
    # the same direction: the raw gradient scaled down as a whole
    for got, want in zip(clipped.grads[0], raw):
        torch.testing.assert_close(got, want * (1e-3 / raw_norm), rtol=1e-4, atol=1e-12)
    # a clip above the norm changes nothing
    _, loose = run(prepared, tmp_path, "loose", max_steps=1, grad_clip=2 * raw_norm)
    for got, want in zip(loose.grads[0], raw):
        assert torch.equal(got, want)


@pytest.mark.parametrize(
    "scope, reached",
    [
        ("recurrent", lambda name: name.startswith("rnn.weight")),  # W_ih, W_hh
        ("all", lambda name: True),
    ],
)
def test_the_optimizer_is_adamw_with_betas_0_9_and_0_99_decaying_the_weights_it_is_on(
    prepared, tmp_path, scope, reached
):
    trainer, recorded = run(
        prepared,
        tmp_path,
        "run",
        max_steps=6,
        lr=1e-2,
        warmup_steps=2,
        weight_decay=0.1,
        weight_decay_on=scope,
    )
    group = trainer.optimizer.param_groups[0]
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert group["betas"] == (0.9, 0.99)
    # torch's AdamW with those settings, replayed on the gradients the trainer applied,
    # decay 0.1 on the weights `reached` names and none on the others, moves every
    # weight as the trainer's step did.
    names = [name for name, _ in trainer.model.named_parameters()]
    assert [n for n in names if reached(n)] == list(decayed_weights(trainer.model_config, scope))
    replica = [p.clone().requires_grad_(True) for p in recorded.before]
    decayed = [p for name, p in zip(names, replica) if reached(name)]
    kept = [p for name, p in zip(names, replica) if not reached(name)]
    assert len(decayed) == {"recurrent": 2, "all": len(names)}[scope]
    reference = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": 0.1}, {"params": kept, "weight_decay": 0.0}],
        lr=1.0,
        betas=(0.9, 0.99),
    )
    for lr, grads in zip(recorded.lrs, recorded.grads):
        for reference_group in reference.param_groups:
            reference_group["lr"] = lr
        for param, grad in zip(replica, grads):
            param.grad = grad
        reference.step()
    after = list(trainer.model.parameters())
    for trained, replayed, before in zip(after, replica, recorded.before):
        # The moves are ~1e-3 (~1e-5 where only the weight decay acts); the trainer's
        # fused kernel rounds differently from the reference by a float32 step of the
        # weight at most (~1e-8). betas (0.9, 0.999) would move them by ~1e-5 more.
        torch.testing.assert_close(
            trained.detach() - before, replayed.detach() - before, rtol=1e-4, atol=1e-7
        )


def test_the_decay_reaches_a_named_set_of_weights():
    assert TrainConfig().weight_decay_on == "recurrent"
    with pytest.raises(CharRNNError, match="unknown weight-decay-on 'biases'; choose one of"):
        TrainConfig(weight_decay_on="biases")
