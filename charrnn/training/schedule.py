"""What the training loop counts (LoopState, saved in every state), its clock, and
when it validates (EvalSchedule). No torch: tested on its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..config import TrainConfig

AUTO_EVAL_SHARE = 0.05  # share of the budget automatic validations should take together
AUTO_EVALS_MAX = 50  # automatic validations per run, at most


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


class EvalSchedule:
    """Validate every eval_every steps, or automatically at evenly spaced points of
    the budget (see auto_eval_intervals).

    The cost of a validation is the last one's time, or before the first, an
    estimate from training throughput (a forward pass is about a third of a step).
    """

    def __init__(self, config: TrainConfig, val_chars: int):
        self.config, self.val_chars = config, val_chars

    def due(self, loop: LoopState) -> bool:
        """Whether to validate after the step just taken; moves loop.next_eval on."""
        config = self.config
        if config.eval_every > 0:
            return loop.step % config.eval_every == 0
        progress = config.progress(loop.elapsed, loop.step)
        if progress < loop.next_eval or loop.next_eval >= 1.0:
            return False
        budget = config.max_time if config.max_time > 0 else loop.elapsed / max(progress, 1e-9)
        speed = loop.chars_seen / max(loop.elapsed - loop.eval_seconds, 1e-9)
        cost = loop.last_eval_seconds or self.val_chars / max(3 * speed, 1.0)
        intervals = auto_eval_intervals(budget, cost)
        # Check at the marks j / intervals (quarters while none fits, in case the cost
        # estimate drops); the epsilon keeps 2/100 * 50 from flooring to 0.
        marks = max(intervals, 4)
        mark = math.floor(progress * marks + 1e-9)
        loop.next_eval = (mark + 1) / marks
        if mark == 0:  # the first check only sets the first mark
            return False
        loop.evals_done += 1
        return intervals > 0
