"""When training validates: EvalSchedule on a simulated loop, without torch."""

import math
import subprocess
import sys

import pytest

from charrnn.config import TrainConfig
from charrnn.training.schedule import (
    AUTO_EVALS_MAX,
    EVALS_PER_PASS,
    PASS_EVAL_SHARE,
    VAL_SLICE_MIN,
    EvalSchedule,
    LoopState,
    learning_rate,
    progress,
    stop_reason,
    validation_chars,
    warmup_cosine,
)


def due_steps(
    config: TrainConfig,
    val_chars: int,
    eval_seconds: float,
    steps: int,
    *,
    train_chars: int | None = None,
    step_chars: int = 64,
    step_seconds: float = 0.1,
) -> list[int]:
    """The steps after which validation is due, for a loop of `step_seconds` steps of
    `step_chars` characters whose validations take `eval_seconds`, on a training text
    of `train_chars` characters."""
    schedule, loop, due = EvalSchedule(config, val_chars, train_chars), LoopState(), []
    for step in range(1, steps + 1):
        loop.step, loop.chars_seen = step, step_chars * step
        loop.elapsed = step_seconds * step + loop.eval_seconds
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


def test_the_first_budget_keeps_the_learning_rate_it_always_had():
    """peak_ratio 1 is the run's first segment: the same floats as warm-up times
    final + (1 - final) * cosine, written out here."""
    config = TrainConfig(max_time=0, max_steps=100, lr=6e-3, warmup_steps=20)
    for step in (0, 7, 19, 20, 55, 99):
        progress = step / 100
        warm = min(1.0, (step + 1) / 20)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        expected = 6e-3 * warm * (0.05 + (1.0 - 0.05) * cosine)
        assert warmup_cosine(config, step, progress) == expected
        assert learning_rate(config, LoopState(step=step), progress) == expected


def test_the_default_schedule_at_its_landmarks():
    """The README's schedule, by hand: 20 steps of linear warm-up to --lr (6e-3), then
    a cosine to 5% of it over the budget."""
    config = TrainConfig(max_time=0, max_steps=1000)
    assert (config.lr, config.warmup_steps, config.final_lr_ratio) == (6e-3, 20, 0.05)
    assert warmup_cosine(config, 0, 0.0) == pytest.approx(6e-3 / 20)  # the first step
    assert warmup_cosine(config, 9, 0.0) == pytest.approx(6e-3 / 2)
    assert warmup_cosine(config, 19, 0.0) == pytest.approx(6e-3)  # the warm-up's last step
    # then the cosine, by the share of the budget used: 0.05 + 0.475 * (1 + cos(0.02 pi))
    assert warmup_cosine(config, 20, 0.02) == pytest.approx(6e-3 * 0.9990627, rel=1e-6)
    assert warmup_cosine(config, 500, 0.5) == pytest.approx(6e-3 * 0.525)  # 0.05 + 0.95 / 2
    # 0.05 + 0.475 * (1 - sqrt(2) / 2)
    assert warmup_cosine(config, 750, 0.75) == pytest.approx(6e-3 * 0.1891243, rel=1e-6)
    assert warmup_cosine(config, 999, 1.0) == pytest.approx(6e-3 * 0.05)  # the end: 5%


def test_a_time_budget_sets_the_schedule_by_the_clock():
    """Under --max-time the cosine follows the seconds spent, whatever the step count;
    with both budgets, whichever is further along."""
    config = TrainConfig(max_time=100.0, lr=1e-2)
    for elapsed, expected in [(0.0, 1e-2), (50.0, 1e-2 * 0.525), (100.0, 1e-2 * 0.05)]:
        loop = LoopState(step=1000, elapsed=elapsed)
        done = progress(config, loop)
        assert done == elapsed / 100.0
        assert learning_rate(config, loop, done) == pytest.approx(expected)
    both = TrainConfig(max_time=100.0, max_steps=400)
    assert progress(both, LoopState(step=100, elapsed=50.0)) == 0.5  # the clock leads
    assert progress(both, LoopState(step=300, elapsed=50.0)) == 0.75  # the steps lead
    assert progress(both, LoopState(step=900, elapsed=10.0)) == 1.0  # never past the end


def test_the_warm_up_rises_linearly_to_the_peak():
    config = TrainConfig(max_time=0, max_steps=100, lr=1e-2, warmup_steps=4)
    values = [warmup_cosine(config, step, 0.0) for step in range(6)]
    assert values == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2, 1e-2])
    no_warmup = TrainConfig(max_time=0, max_steps=100, lr=1e-2, warmup_steps=0)
    assert warmup_cosine(no_warmup, 0, 0.0) == pytest.approx(1e-2)


def test_an_extension_warms_up_again_to_its_peak_then_decays_to_the_final_rate():
    config = TrainConfig(max_time=0, max_steps=50, lr=1e-2, warmup_steps=10)
    loop = LoopState(step=200, elapsed=30.0, next_eval=1.0, evals_done=9, stale_evals=2)
    loop.start_segment(0.3)
    assert (loop.next_eval, loop.evals_done, loop.stale_evals) == (0.0, 0, 0)
    assert progress(config, loop) == 0.0
    assert learning_rate(config, loop, 0.0) == pytest.approx(1e-2 * 0.3 / 10)
    loop.step = 209  # the tenth step of the extension: warm-up done
    assert learning_rate(config, loop, 0.0) == pytest.approx(1e-2 * 0.3)
    loop.step = 250
    assert progress(config, loop) == 1.0
    assert learning_rate(config, loop, 1.0) == pytest.approx(1e-2 * 0.05)


def test_an_extension_by_time_counts_from_where_it_began():
    config = TrainConfig(max_time=10.0)
    loop = LoopState(step=500, elapsed=300.0)
    loop.start_segment(0.3)
    loop.elapsed = 305.0
    assert progress(config, loop) == 0.5 and stop_reason(config, loop) is None
    loop.elapsed = 310.0
    assert stop_reason(config, loop) == "time"


def test_why_training_stops():
    steps = TrainConfig(max_time=1000.0, max_steps=20)
    assert stop_reason(steps, LoopState(step=19, elapsed=5.0)) is None
    assert stop_reason(steps, LoopState(step=20, elapsed=5.0)) == "steps"
    assert stop_reason(steps, LoopState(step=3, elapsed=1000.0)) == "time"
    patient = TrainConfig(max_time=0, max_steps=20, patience=3)
    assert stop_reason(patient, LoopState(step=5, stale_evals=2)) is None
    assert stop_reason(patient, LoopState(step=5, stale_evals=3)) == "patience"
    # patience 0: never, however long the validation loss has not improved
    assert stop_reason(TrainConfig(max_time=0, max_steps=20), LoopState(stale_evals=99)) is None


def test_automatic_validations_are_spread_over_each_segment():
    config = TrainConfig(max_time=0, max_steps=100)
    schedule, loop = EvalSchedule(config, 10), LoopState()
    first = []
    for step in range(1, 101):
        loop.step, loop.chars_seen, loop.elapsed = step, 64 * step, 0.1 * step
        if schedule.due(loop):
            first.append(step)
    loop.start_segment(0.3)
    second = []
    for step in range(101, 201):
        loop.step, loop.chars_seen, loop.elapsed = step, 64 * step, 0.1 * step
        if schedule.due(loop):
            second.append(step)
    assert [s - 100 for s in second] == first == list(range(2, 100, 2))


def pass_due_steps(
    train_chars: int, eval_seconds: float, steps: int, step_seconds: float = 0.01, **budget
) -> list[int]:
    """The steps after which validation is due on a text of `train_chars` characters,
    for a loop of `step_seconds` steps of 16 x 64 characters."""
    config = TrainConfig(**{"max_time": 60.0, "batch_size": 16, "seq_len": 64, **budget})
    return due_steps(
        config, 1000, eval_seconds, steps,
        train_chars=train_chars, step_chars=1024, step_seconds=step_seconds,
    )  # fmt: skip


def test_a_small_text_is_validated_several_times_per_pass():
    # 60 s at 100 steps/s covers 30,000 characters about 2,000 times
    due = pass_due_steps(30_000, 1e-4, 100)
    quarter = 30_000 / EVALS_PER_PASS  # 7,500 characters: after steps 8, 15, 22, 30, ...
    expected = [s for s in range(1, 101) if (1024 * s) // quarter != (1024 * (s - 1)) // quarter]
    assert expected[:4] == [8, 15, 22, 30]
    assert set(expected) <= set(due)


def test_a_text_the_budget_passes_over_a_few_times_only_is_validated_by_the_budget():
    # 4.5M characters, 60 s at 100 steps/s of 1,024: 1.4 passes; the same steps as
    # without the text's length
    by_budget = pass_due_steps(None, 1e-4, 6000)
    assert pass_due_steps(4_500_000, 1e-4, 6000) == by_budget
    # a step budget counts the same way: 6,000 steps over 30,000 characters are many passes
    assert len(pass_due_steps(30_000, 1e-4, 600, max_time=0, max_steps=6000)) > len(
        pass_due_steps(None, 1e-4, 600, max_time=0, max_steps=6000)
    )


def test_validations_per_pass_stay_within_their_share_of_the_time():
    # each validation costs as much as 5 steps: at every quarter pass (7-8 steps) that
    # would be 2/3 of the time; the marks are skipped while over PASS_EVAL_SHARE
    steps, cost = 3000, 0.05
    due = pass_due_steps(30_000, cost, steps)
    assert len(due) > steps * 1024 / 30_000  # more than one per pass...
    share = len(due) * cost / (steps * 0.01)
    assert share < PASS_EVAL_SHARE * 1.1  # ...but not more than their share


def test_a_large_validation_text_is_sliced_for_a_small_training_text():
    assert validation_chars(4_500_000, 505_000) == 505_000  # large text: all of it
    assert validation_chars(30_000, 23_000) == VAL_SLICE_MIN  # small: the first 16k
    assert validation_chars(30_000, 10_000) == 10_000
    assert validation_chars(200_000, 300_000) == 50_000  # a quarter of the training text
