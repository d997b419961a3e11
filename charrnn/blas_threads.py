"""How many BLAS threads a short step repeated many times should use, chosen by timing it.

Why measure instead of fixing a number: a batch-1 sampling step is one
matrix-vector product of a few MB plus small vector operations. On the
project's 2-core CPU a second OpenBLAS thread made it 1.3-1.5x faster while
the cores were idle, and over 15x slower while another process kept them busy
(the BLAS threads spin, waiting on each other). Which case holds is known only
at run time and can change during a long sample, so `ThreadTuner` times a short
burst of steps with each candidate count, keeps the fastest, and times them
again every few thousand steps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from statistics import fmean

PROBE_STEPS = 24  # steps timed per candidate count
RUN_STEPS = 4096  # steps with the chosen count before the counts are timed again
MAX_RUN_STEPS = 16 * RUN_STEPS  # the interval doubles while the choice holds, up to this
# A count whose probe has taken this many times a whole probe of the fastest
# count so far is dropped from the round: on a busy machine a second thread
# costs milliseconds a step, so a probe of it is kept short.
LOSING_FACTOR = 2.0


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

    `tuner.run(step, *args)` calls `step(*args)`. A round times each count in
    turn for `probe_steps` steps (fewer for a count that is clearly losing) and
    keeps the one with the lowest mean step time for the next `run_steps`
    steps; then the next round. The mean, not the median, because under load
    step times are bimodal (fast while all threads have a core, very slow
    while one waits for it) and the mean is what throughput pays; the first
    step after a switch is left out (threads waking up). While a round
    confirms the count in use, the steps until the next one double (up to
    16x). With one count there is nothing to choose and nothing is timed.
    `chosen` is the count in use; `step_seconds` the means of the latest round.
    """

    def __init__(
        self,
        counts: list[int],
        set_threads: Callable[[int], None],
        probe_steps: int = PROBE_STEPS,
        run_steps: int = RUN_STEPS,
        clock: Callable[[], float] = time.perf_counter,
    ):
        if not counts or min(counts) < 1:
            raise ValueError("thread counts must be >= 1")
        self.counts, self.set_threads, self.clock = list(counts), set_threads, clock
        self.probe_steps, self.run_steps = probe_steps, run_steps
        self.step_seconds: dict[int, float] = {}
        self.chosen = self.counts[0]
        self._run_length, self._last_fastest = run_steps, None
        self._times: list[float] = []  # step times of the count being timed
        # The index in `counts` being timed, None between rounds; the steps left in
        # this probe or run, None with a single count (never timed).
        self._probe_index, self._left = None, None
        if len(self.counts) > 1:
            self._start_round()
        self.set_threads(self.counts[0])

    def run(self, step: Callable, *args):
        if self._probe_index is None:
            if self._left is None or self._left > 0:  # one count only, or between rounds
                if self._left:
                    self._left -= 1
                return step(*args)
            self._start_round()
            self.set_threads(self.counts[0])
        started = self.clock()
        result = step(*args)
        self._times.append(self.clock() - started)
        self._left -= 1
        if self._left == 0 or self._losing():
            self._end_probe()
        return result

    def _start_round(self) -> None:
        self.step_seconds = {}
        self._probe_index, self._left, self._times = 0, self.probe_steps, []

    def _losing(self) -> bool:
        if not self.step_seconds:
            return False
        fastest_probe = self.probe_steps * min(self.step_seconds.values())
        return sum(self._times) > LOSING_FACTOR * fastest_probe

    def _end_probe(self) -> None:
        times = self._times[1:] or self._times  # the first step after a switch left out
        self.step_seconds[self.counts[self._probe_index]] = fmean(times)
        self._probe_index += 1
        if self._probe_index < len(self.counts):
            self._left, self._times = self.probe_steps, []
            self.set_threads(self.counts[self._probe_index])
            return
        fastest = min(self.step_seconds, key=self.step_seconds.__getitem__)
        confirmed = fastest == self._last_fastest
        self._run_length = min(2 * self._run_length, MAX_RUN_STEPS) if confirmed else self.run_steps
        self.chosen = self._last_fastest = fastest
        self.set_threads(self.chosen)
        self._probe_index, self._left = None, self._run_length
