"""How many BLAS threads a short step repeated many times should use, chosen by timing it.

Why measure instead of fixing a number: a batch-1 sampling step is one
matrix-vector product of a few MB plus small vector operations. On the
project's 2-core CPU a second OpenBLAS thread made it 1.3-1.5x faster while
the cores were idle, and over 15x slower while another process kept them busy
(the BLAS threads spin, waiting on each other). Which case holds is known only
at run time and can change during a long sample, so `ThreadTuner` times the
candidate counts in short interleaved blocks of steps, keeps the fastest, and
times them again every few thousand steps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from statistics import fmean

BLOCK_STEPS, BLOCKS = 8, 3  # a round times each count in 3 interleaved blocks of 8 steps
# Untimed steps with each count before the first round: right after the prime
# (torch's threads just worked) or a pause, a 2-thread step measured up to 8 ms
# against ~0.1 ms once running, which made the first round drop 2 threads wrongly.
WARMUP_STEPS = 4
RUN_STEPS = 4096  # steps with the chosen count before the next round
MAX_RUN_STEPS = 16 * RUN_STEPS  # the interval doubles while the choice holds, up to this
# A block that has taken this many times what a whole block of the fastest count
# would is cut, and its count dropped from the round: on a busy machine a second
# thread costs milliseconds a step, so its blocks must stay short.
LOSING_FACTOR = 4.0


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def blas_thread_limit() -> int:
    """The most threads numpy's BLAS may use now: its own setting, which follows
    OPENBLAS_NUM_THREADS / OMP_NUM_THREADS when the user set them."""
    from threadpoolctl import threadpool_info

    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts, default=1)


def candidate_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to `cores`, and `cores` itself."""
    counts, count = [], 1
    while count < cores:
        counts.append(count)
        count *= 2
    return [*counts, cores]


def blas_thread_setter() -> Callable[[int], None]:
    """A function that sets the thread count of every BLAS library loaded (numpy's)."""
    from threadpoolctl import ThreadpoolController

    libraries = ThreadpoolController().select(user_api="blas").lib_controllers

    def set_threads(count: int) -> None:
        for library in libraries:
            library.set_num_threads(count)

    return set_threads


class ThreadTuner:
    """Runs steps with the fastest of `counts` threads, as measured while running.

    `tuner.run(step, *args)` calls `step(*args)`. A round times the counts in
    interleaved blocks (1, 2, 1, 2, 1, 2 ... `blocks` blocks of `block_steps`
    steps each), so that all counts see the same conditions: the first steps of
    a run are slow (caches, pages, thread start) and would otherwise penalise
    whichever count went first. The count with the lowest mean step time runs
    the next `run_steps` steps; then the next round. The mean, not the median,
    because under load step times are bimodal (fast while all threads have a
    core, very slow while one waits for it) and the mean is what throughput
    pays; the first step of each block is left out (threads waking up). While
    a round confirms the count in use, the steps until the next one double (up
    to `max_run_steps`). Before the first round, `warmup_steps` untimed steps with each
    count. With one count there is nothing to choose and nothing is timed.
    `chosen` is the count in use; `step_seconds` the means of the latest round.
    """

    def __init__(
        self,
        counts: list[int],
        set_threads: Callable[[int], None],
        block_steps: int = BLOCK_STEPS,
        blocks: int = BLOCKS,
        run_steps: int = RUN_STEPS,
        warmup_steps: int = WARMUP_STEPS,
        clock: Callable[[], float] = time.perf_counter,
        max_run_steps: int = MAX_RUN_STEPS,
    ):
        if not counts or min(counts) < 1:
            raise ValueError("thread counts must be >= 1")
        self.counts, self.set_threads, self.clock = list(counts), set_threads, clock
        self.block_steps, self.blocks, self.run_steps = block_steps, blocks, run_steps
        self.max_run_steps = max_run_steps
        self.step_seconds: dict[int, float] = {}
        self.chosen = self.counts[0]
        self._run_length, self._last_fastest = run_steps, None
        # Within a round: the blocks still to run, each count's step times so far,
        # the counts dropped; the count of the block being timed (None between
        # rounds) and that block's times.
        self._plan: list[int] = []
        self._times: dict[int, list[float]] = {}
        self._dropped: set[int] = set()
        self._block_count: int | None = None
        self._block_times: list[float] = []
        self._left: int | None = None  # steps left in this block or run; None: one count
        self.set_threads(self.counts[0])
        self._warmup: list[int] = []  # the count of each untimed step before the first round
        self._warmup_count = self.counts[0]
        if len(self.counts) > 1:
            self._warmup = [count for count in self.counts for _ in range(warmup_steps)]
            self._left = 0  # the first round starts after the warm-up

    def run(self, step: Callable, *args):
        if self._warmup:
            count = self._warmup.pop(0)
            if count != self._warmup_count:
                self.set_threads(count)
                self._warmup_count = count
            return step(*args)
        if self._block_count is None:
            if self._left is None or self._left > 0:  # one count only, or between rounds
                if self._left:
                    self._left -= 1
                return step(*args)
            self._start_round()
        started = self.clock()
        result = step(*args)
        self._block_times.append(self.clock() - started)
        self._left -= 1
        losing = self._losing()
        if self._left == 0 or losing:
            self._end_block(drop=losing)
        return result

    def _start_round(self) -> None:
        self._plan = [count for _ in range(self.blocks) for count in self.counts]
        self._times = {count: [] for count in self.counts}
        self._dropped = set()
        self._next_block()

    def _next_block(self) -> None:
        while self._plan and self._plan[0] in self._dropped:
            self._plan.pop(0)
        if not self._plan:
            self._end_round()
            return
        self._block_count, self._left, self._block_times = self._plan.pop(0), self.block_steps, []
        self.set_threads(self._block_count)

    def _losing(self) -> bool:
        """This block has cost LOSING_FACTOR times a whole block of the fastest count."""
        means = [fmean(times) for times in self._times.values() if times]
        return bool(means) and sum(self._block_times) > LOSING_FACTOR * self.block_steps * min(
            means
        )

    def _end_block(self, drop: bool) -> None:
        if drop:
            self._dropped.add(self._block_count)
        # The first step after a switch is left out (unless it is all there is).
        self._times[self._block_count] += self._block_times[1:] or self._block_times
        self._next_block()

    def _end_round(self) -> None:
        self.step_seconds = {count: fmean(times) for count, times in self._times.items() if times}
        fastest = min(self.step_seconds, key=self.step_seconds.__getitem__)
        confirmed = fastest == self._last_fastest
        self._run_length = (
            min(2 * self._run_length, self.max_run_steps) if confirmed else self.run_steps
        )
        self.chosen = self._last_fastest = fastest
        self.set_threads(self.chosen)
        self._block_count, self._left = None, self._run_length
