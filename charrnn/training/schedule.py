"""What the training loop counts (LoopState, saved in every state), its clock, where
it is in its budget and learning-rate schedule, when it validates (EvalSchedule)
and why it stops. No torch: tested on its own.

A run's budget and learning-rate schedule form a segment: the first from step 0,
and one more each time the run is extended (`resume_run` with a new budget),
counted from the step and time where the extension began.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..config import TrainConfig

AUTO_EVAL_SHARE = 0.05  # share of the budget automatic validations should take together
AUTO_EVALS_MAX = 50  # automatic validations per run, at most

# A text that is small for the model (policy.is_small_text: the trainer passes its
# length) and that the budget will pass over many times is also validated by the
# text: EVALS_PER_PASS times per pass. A model that can learn such a
# text by heart passes its best validation within a few passes and gets worse after
# it, so validations spread over the budget alone come too late to catch the best.
MANY_PASSES = 4  # "many": the budget is expected to cover the text this many times
EVALS_PER_PASS = 4
# ... as long as validating has taken at most this share of the training time so far.
PASS_EVAL_SHARE = 0.25
# A plateau (patience validations without improvement) multiplies the learning rate by
# this, and the trainer goes back to the best model (Trainer._back_to_best), up to
# TrainConfig.lr_drops times before patience stops the run.
PLATEAU_FACTOR = 0.1
# The validation text scored during training: the whole of it, or its first
# max(VAL_SLICE_MIN, VAL_SLICE_PER_TRAIN x training characters) characters when it is
# larger (a small text with a large held-out file). Four validations per pass then
# cost at most about 4 x 0.25 / 3 of a pass's time (a forward pass is about a third
# of a training step), within PASS_EVAL_SHARE.
VAL_SLICE_MIN = 16_384
VAL_SLICE_PER_TRAIN = 0.25


@dataclass
class LoopState:
    """The training loop's bookkeeping; saved in every training state."""

    step: int = 0
    chars_seen: int = 0
    elapsed: float = 0.0  # seconds of training so far, across resumes
    eval_seconds: float = 0.0
    last_eval_seconds: float = 0.0
    evals_done: int = 0  # automatic validation points passed
    next_eval: float = 0.0  # budget progress at which automatic validation is next considered
    best_nats: float | None = None
    position: int = 0  # in each batch stream
    epoch: int = 0
    loss_sum: float = 0.0  # training loss since the last validation
    loss_count: int = 0
    lr_scale: float = 1.0  # halved by each rollback after numerical faults
    rollbacks: int = 0
    best_step: int = 0  # the step of the best validation
    stale_evals: int = 0  # validations in a row without improving on the best (patience)
    plateaus: int = 0  # times patience ran out and the learning rate dropped (this segment)
    # Where the current budget and learning-rate schedule began (an extension starts
    # a new segment) and its peak learning rate as a share of TrainConfig.lr.
    segment_step: int = 0
    segment_elapsed: float = 0.0
    segment_peak: float = 1.0
    # The gradient norms (before clipping) of the steps since the last validation.
    grad_norm_sum: float = 0.0
    grad_norm_max: float = 0.0
    grad_steps: int = 0
    clipped_steps: int = 0

    def start_segment(self, peak_ratio: float) -> None:
        """Begin a new budget here (extending the run): warm-up and cosine start over
        from a peak of lr * peak_ratio, validations are spread over the new budget,
        and the patience count and its plateaus start again."""
        self.segment_step, self.segment_elapsed = self.step, self.elapsed
        self.segment_peak = peak_ratio
        self.next_eval, self.evals_done, self.stale_evals, self.plateaus = 0.0, 0, 0, 0

    def add_validation(self, val_nats: float, config: TrainConfig) -> bool:
        """Count a validation loss (whether it is the best so far, which it returns).
        When `config.patience` validations in a row have not improved on the best and
        fewer than `config.lr_drops` plateaus came before, the learning rate drops
        PLATEAU_FACTOR-fold and the count starts again; after that, patience stops
        the run (stop_reason)."""
        improved = self.best_nats is None or val_nats < self.best_nats
        if improved:
            self.best_nats, self.best_step, self.stale_evals = val_nats, self.step, 0
            return True
        self.stale_evals += 1
        if config.patience and self.stale_evals >= config.patience:
            if self.plateaus < (config.lr_drops or 0):
                self.plateaus, self.stale_evals = self.plateaus + 1, 0
        return False

    def add_gradient(self, norm: float, clip: float) -> None:
        """Count one step's gradient norm, before clipping at `clip`."""
        self.grad_norm_sum += norm
        self.grad_norm_max = max(self.grad_norm_max, norm)
        self.grad_steps += 1
        self.clipped_steps += norm > clip

    def gradient_record(self) -> dict:
        """The gradient facts of the steps since the last validation, for its metrics
        record (mean and largest norm before clipping, the share of steps clipped, how
        many steps), and the count started again."""
        steps = self.grad_steps
        record = {
            "grad_norm_mean": self.grad_norm_sum / steps if steps else None,
            "grad_norm_max": self.grad_norm_max if steps else None,
            "clipped_share": self.clipped_steps / steps if steps else None,
            "grad_steps": steps,
        }
        self.grad_norm_sum, self.grad_norm_max, self.grad_steps, self.clipped_steps = 0.0, 0.0, 0, 0
        return record


def progress(config: TrainConfig, loop: LoopState) -> float:
    """Fraction of the current segment's budget used: by time or by steps, whichever
    is further."""
    elapsed, step = loop.elapsed - loop.segment_elapsed, loop.step - loop.segment_step
    by_time = elapsed / config.max_time if config.max_time > 0 else 0.0
    by_steps = step / config.max_steps if config.max_steps > 0 else 0.0
    return min(1.0, max(by_time, by_steps))


def warmup_cosine(config: TrainConfig, step: int, done: float, peak_ratio: float = 1.0) -> float:
    """Linear warm-up, then cosine decay over the budget (time or steps), from
    lr * peak_ratio (1 for a run's first budget; policy.EXTENSION_PEAK_RATIO for an
    extension) to lr * final_lr_ratio; `step` counts from the budget's start, `done`
    is the share of it used."""
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    cosine = 0.5 * (1.0 + math.cos(math.pi * done))
    final = config.final_lr_ratio
    return config.lr * warm * (final + (peak_ratio - final) * cosine)


def learning_rate(config: TrainConfig, loop: LoopState, done: float) -> float:
    """The learning rate of the next step, `done` of the segment's budget used: the
    segment's warm-up and cosine (warmup_cosine), times the rollbacks' scale and
    PLATEAU_FACTOR per plateau."""
    step = loop.step - loop.segment_step
    scale = loop.lr_scale * PLATEAU_FACTOR**loop.plateaus
    return warmup_cosine(config, step, done, loop.segment_peak) * scale


STOP_REASONS = ("time", "steps", "patience")


def stop_reason(config: TrainConfig, loop: LoopState) -> str | None:
    """Why training stops now (one of STOP_REASONS), or None while it goes on: the
    step budget, the time budget (of the current segment), or `config.patience`
    validations in a row without improvement."""
    if config.patience and loop.stale_evals >= config.patience:
        return "patience"
    steps = loop.step - loop.segment_step
    if config.max_steps > 0 and steps / config.max_steps >= 1.0:
        return "steps"
    if progress(config, loop) >= 1.0:
        return "time"
    return None


def stop_description(reason: str, patience: int) -> str:
    """Why training stopped (one of STOP_REASONS), in words."""
    if reason == "patience":
        return f"patience ({patience} validations without improvement)"
    return {"steps": "the step budget", "time": "the time budget"}[reason]


class Clock:
    """Seconds of a run, counted on from the `elapsed` of earlier sessions (a fresh
    start, a resume, a rollback)."""

    def __init__(self, elapsed_before: float = 0.0):
        self.origin = time.perf_counter()
        self.elapsed_before = elapsed_before

    def now(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.origin


def auto_eval_intervals(budget_seconds: float, eval_seconds: float) -> int:
    """Into how many intervals automatic validations split the budget: as many as
    fit in AUTO_EVAL_SHARE of it, at least 4 (validating at 1/4, 2/4, 3/4, each
    when one validation fits in that share) and at most AUTO_EVALS_MAX; 0 when
    not even one fits (then only the end of the run is validated).

    A small validation text is thus checked often, so the best model of a run
    that overfits early (a small corpus) is caught.
    """
    fits = AUTO_EVAL_SHARE * budget_seconds / max(eval_seconds, 1e-9)
    if fits < 1.0:
        return 0
    return min(AUTO_EVALS_MAX, max(4, int(fits)))


def validation_chars(train_chars: int, val_chars: int) -> int:
    """How much of a validation text of `val_chars` characters training scores (from
    its start): all of it, or max(VAL_SLICE_MIN, VAL_SLICE_PER_TRAIN * train_chars)."""
    return min(val_chars, max(VAL_SLICE_MIN, int(VAL_SLICE_PER_TRAIN * train_chars)))


class EvalSchedule:
    """Validate every eval_every steps, or automatically: at evenly spaced points of
    the budget (see auto_eval_intervals), and, when the budget will pass over the
    training text MANY_PASSES times or more, EVALS_PER_PASS times per pass.

    The cost of a validation is the last one's time, or before the first, an
    estimate from training throughput (a forward pass is about a third of a step).
    """

    def __init__(self, config: TrainConfig, val_chars: int, train_chars: int | None = None):
        """`train_chars`: the training text's length (None: unknown, no validations
        per pass)."""
        self.config, self.val_chars, self.train_chars = config, val_chars, train_chars

    def due(self, loop: LoopState) -> bool:
        """Whether to validate after the step just taken; moves loop.next_eval on."""
        if self.config.eval_every > 0:
            return loop.step % self.config.eval_every == 0
        by_budget = self._budget_mark(loop)
        return self._pass_mark(loop) or by_budget

    def expected_passes(self, loop: LoopState) -> float:
        """How many times the current budget will have passed over the training text
        at its end, at the speed measured so far."""
        config = self.config
        step_chars = config.batch_size * config.seq_len
        budgets = []
        if config.max_steps > 0:
            budgets.append(loop.segment_step + config.max_steps)
        if config.max_time > 0:
            speed = loop.step / max(loop.elapsed - loop.eval_seconds, 1e-9)  # steps per second
            budgets.append(speed * (loop.segment_elapsed + config.max_time))
        return min(budgets) * step_chars / max(self.train_chars or 0, 1)

    def _pass_mark(self, loop: LoopState) -> bool:
        """Whether the step just taken crossed a mark at 1/EVALS_PER_PASS of a pass over
        the training text, on a budget of many passes, with validating within
        PASS_EVAL_SHARE of the time."""
        if not self.train_chars:
            return False
        interval = self.train_chars / EVALS_PER_PASS
        before = loop.chars_seen - self.config.batch_size * self.config.seq_len
        if loop.chars_seen // interval == max(before, 0) // interval:
            return False
        cheap = loop.eval_seconds <= PASS_EVAL_SHARE * max(loop.elapsed - loop.eval_seconds, 0)
        return cheap and self.expected_passes(loop) >= MANY_PASSES

    def _budget_mark(self, loop: LoopState) -> bool:
        """Whether the step just taken reached the next of the budget's evenly spaced
        marks (auto_eval_intervals) at which a validation fits."""
        config = self.config
        done = progress(config, loop)
        if done < loop.next_eval or loop.next_eval >= 1.0:
            return False
        elapsed = loop.elapsed - loop.segment_elapsed
        budget = config.max_time if config.max_time > 0 else elapsed / max(done, 1e-9)
        speed = loop.chars_seen / max(loop.elapsed - loop.eval_seconds, 1e-9)
        cost = loop.last_eval_seconds or self.val_chars / max(3 * speed, 1.0)
        intervals = auto_eval_intervals(budget, cost)
        # Check at the marks j / intervals (quarters while none fits, in case the cost
        # estimate drops); the epsilon keeps 2/100 * 50 from flooring to 0.
        marks = max(intervals, 4)
        mark = math.floor(done * marks + 1e-9)
        loop.next_eval = (mark + 1) / marks
        if mark == 0:  # the first check only sets the first mark
            return False
        loop.evals_done += 1
        return intervals > 0
