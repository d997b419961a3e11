"""The server's sampling engine: one worker thread steps every model's continuous batch
(Model.batch) off the event loop; requests wait in a bounded queue and their characters
reach the event loop in chunks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ..errors import CharRNNError

# After the first characters, a stream's chunks go out at most this often: a character
# per event would cost the server (and the client) an event per character per client.
STREAM_INTERVAL = 0.01


class Busy(Exception):
    """The queue is full: the caller answers 503 with Retry-After."""


@dataclass(eq=False)
class Job:
    """One completion request: its settings, and what the worker has produced for it."""

    model: str
    prompt: str
    settings: object  # SampleConfig
    exact: bool
    loop: asyncio.AbstractEventLoop
    texts: list[str] = field(default_factory=list)  # per choice: produced, not yet taken
    done: bool = False
    error: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    chars: int = 0  # characters produced, all choices together
    started: float = field(default_factory=time.perf_counter)
    first_char: float | None = None  # when the first character came (perf_counter)
    stream: object = None  # the batch's Stream, once joined
    cancelled: bool = False

    def __post_init__(self):
        self.texts = [""] * self.settings.num_samples
        self.ready = asyncio.Event()
        self._lock = threading.Lock()
        self._signalled = False  # a wake-up is on its way to the event loop

    # worker side
    def _push(self, chars: list[str] | None, finished: bool, error: str | None = None) -> None:
        with self._lock:
            if chars:
                self.texts = [t + c for t, c in zip(self.texts, chars)]
                self.chars += sum(map(len, chars))
                if self.first_char is None:
                    self.first_char = time.perf_counter()
            if finished:
                self.done, self.error = True, error
                if self.stream is not None:
                    self.finish_reasons = self.stream.finish_reasons()
            signal, self._signalled = not self._signalled, True
        if signal:  # one wake-up per batch of steps the event loop has not yet taken
            try:
                self.loop.call_soon_threadsafe(self.ready.set)
            except RuntimeError:  # the loop is closed: nobody is listening
                pass

    # event-loop side
    async def chunks(self, interval: float = STREAM_INTERVAL):
        """What each choice gained since the last chunk (a list of str), at most one chunk
        per `interval` seconds after the first; ends when the job is done (then check
        `error`)."""
        first = True
        while True:
            if not first:
                await asyncio.sleep(interval)
            await self.ready.wait()
            self.ready.clear()
            with self._lock:
                texts, self.texts = self.texts, [""] * len(self.texts)
                done, self._signalled = self.done, False
            if any(texts):
                first = False
                yield texts
            if done:
                return

    def produced_chars(self) -> int:
        return self.chars

    def reasons(self) -> list[str]:
        """Per choice, OpenAI's finish_reason: "stop" (its stop string) or "length"."""
        return self.finish_reasons or ["length"] * self.settings.num_samples

    def describe(self) -> str:
        """What the request log says of this job."""
        wait = None if self.first_char is None else (self.first_char - self.started) * 1e3
        first = "-" if wait is None else f"{wait:.0f}ms"
        state = "cancelled" if self.cancelled else (self.error or "done") if self.done else "open"
        return (
            f"model={self.model} n={self.settings.num_samples} chars={self.chars} "
            f"first_char={first} {state}"
        )

    def cancel(self) -> None:
        """The client went away: the rows leave the batch at the next step."""
        self.cancelled = True
        if self.stream is not None:
            self.stream.cancel()


class Engine:
    """Runs the batches of `models` (name -> charrnn.api.Model) in one worker thread.

    At most `max_batch` rows (samples) are in the step at once; at most `max_queue`
    requests wait for room beyond them (`submit` raises Busy past that)."""

    def __init__(self, models: dict, max_batch: int = 64, max_queue: int = 64, threads: int = 1):
        self.models = models
        self.batches = {name: model.batch() for name, model in models.items()}
        self.max_batch, self.max_queue, self.threads = max_batch, max_queue, threads
        self.waiting: deque[Job] = deque()
        self.active: dict[int, Job] = {}  # id(stream) -> job
        self.wake = threading.Condition()
        self.stopping = False
        self.requests = 0  # completion requests taken into a batch
        self.thread = threading.Thread(target=self._run, name="charrnn-sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Cut every request short and end the worker."""
        with self.wake:
            self.stopping = True
            self.wake.notify()
        self.thread.join(timeout)

    def submit(self, job: Job) -> Job:
        with self.wake:
            if self.stopping:
                raise Busy("the server is shutting down")
            rows = sum(b.rows for b in self.batches.values())  # read racily: a bound anyway
            rows += sum(j.settings.num_samples for j in self.waiting)
            room = rows + job.settings.num_samples <= self.max_batch
            if not room and len(self.waiting) >= self.max_queue:
                raise Busy(f"the batch is full and {len(self.waiting)} request(s) wait")
            self.waiting.append(job)
            self.wake.notify()
        return job

    def stats(self) -> dict:
        rows = sum(b.rows for b in self.batches.values())
        freed = sum(b.rows_freed for b in self.batches.values())
        return {
            "rows_active": rows,
            "requests_active": len(self.active),
            "requests_waiting": len(self.waiting),
            "requests_served": self.requests,
            "rows_cancelled": freed,
            "steps": sum(b.steps for b in self.batches.values()),
            "max_batch": self.max_batch,
            "max_queue": self.max_queue,
        }

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        # BLAS threads for the steps (process-wide in OpenBLAS): one by default, since a
        # second thread spins against the event loop and the clients on a busy machine.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads, user_api="blas"):
            self._loop()

    def _loop(self) -> None:
        while True:
            with self.wake:
                while not self.stopping and not self.waiting and not self.active:
                    self.wake.wait()
                if self.stopping:
                    break
                joining = []
                rows = sum(b.rows for b in self.batches.values())
                while self.waiting and (
                    rows + self.waiting[0].settings.num_samples <= self.max_batch or not rows
                ):
                    job = self.waiting.popleft()
                    rows += job.settings.num_samples
                    joining.append(job)
            for job in joining:
                self._join(job)
            for batch in self.batches.values():
                if batch.streams:
                    for stream, chars in batch.step():
                        job = self.active.get(id(stream))
                        if job is None:
                            continue
                        if stream.finished:
                            del self.active[id(stream)]
                        job._push(chars, stream.finished)
                    self._drop_cancelled(batch)
        for job in list(self.active.values()) + list(self.waiting):
            job._push(None, True, "the server is shutting down")
        self.active.clear()
        self.waiting.clear()

    def _join(self, job: Job) -> None:
        if job.cancelled:
            return
        batch = self.batches[job.model]
        try:
            stream = batch.join(job.prompt, job.settings, job.exact)
        except CharRNNError as exc:
            job._push(None, True, str(exc))
            return
        job.stream = stream
        self.requests += 1
        if job.cancelled:
            stream.cancel()
        if stream.finished:  # length 0
            job._push(None, True)
        else:
            self.active[id(stream)] = job

    def _drop_cancelled(self, batch) -> None:
        """Jobs whose streams were cancelled: their rows go at the next step; end them."""
        for key, job in list(self.active.items()):
            if job.cancelled and job.stream in batch.streams:
                pass  # the batch takes the rows out at its next step
            elif job.cancelled:
                del self.active[key]
                job._push(None, True, "cancelled")
