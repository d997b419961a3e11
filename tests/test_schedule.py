"""When training validates: EvalSchedule on a simulated loop, without torch."""

import subprocess
import sys

import pytest

from charrnn.config import TrainConfig
from charrnn.training.schedule import AUTO_EVALS_MAX, EvalSchedule, LoopState


def due_steps(config: TrainConfig, val_chars: int, eval_seconds: float, steps: int) -> list[int]:
    """The steps after which validation is due, for a loop of 0.1 s steps of 64
    characters whose validations take `eval_seconds`."""
    schedule, loop, due = EvalSchedule(config, val_chars), LoopState(), []
    for step in range(1, steps + 1):
        loop.step, loop.chars_seen = step, 64 * step
        loop.elapsed = 0.1 * step + loop.eval_seconds
        if schedule.due(loop):
            due.append(step)
            loop.last_eval_seconds = eval_seconds
            loop.eval_seconds += eval_seconds
    return due


def test_eval_every_n_steps():
    config = TrainConfig(max_time=0, max_steps=30, eval_every=10)
    assert due_steps(config, 1000, 0.0, 30) == [10, 20, 30]


def test_cheap_validations_are_spread_evenly_over_a_step_budget():
    config = TrainConfig(max_time=0, max_steps=100)
    # every 1/50 of the budget; the one at the end is the loop's closing validation
    assert due_steps(config, 10, 1e-6, 100) == list(range(2, 100, 2))
    assert len(range(2, 101, 2)) == AUTO_EVALS_MAX


def test_validations_too_dear_for_the_budget_are_left_to_the_end():
    # A 1 s validation in a 10 s budget: more than its 5% share, so none after the
    # first (at 1/50, when its cost was still an estimate from the training speed).
    config = TrainConfig(max_time=0, max_steps=100)
    assert due_steps(config, 10, 1.0, 100) == [2]


def test_a_time_budget_validates_at_its_quarters_when_four_fit():
    config = TrainConfig(max_time=100.0)  # 5 s of validation: four of 1.2 s fit
    due = due_steps(config, 10, 1.2, 1000)
    assert due[0] == 20  # at 1/50, its cost still an estimate
    # then at 25, 50 and 75 s: 0.1 s per step plus 1.2 s per validation before
    assert [round(0.1 * step + 1.2 * done, 6) for done, step in enumerate(due)][1:] == [
        25.0,
        50.0,
        75.0,
    ]


@pytest.mark.parametrize("field", ["next_eval", "evals_done"])
def test_the_schedule_keeps_its_place_in_the_loop_state(field):
    """What the schedule remembers is in LoopState, so a resumed run goes on with it."""
    loop = LoopState(step=50, chars_seen=3200, elapsed=5.0)
    EvalSchedule(TrainConfig(max_time=0, max_steps=100), 10).due(loop)
    assert getattr(loop, field) != getattr(LoopState(), field)


def test_the_schedule_needs_no_torch():
    code = "import sys, charrnn.training.schedule; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
