"""The run directory: its layout, and every change made to it during a run.

    RUN/best.safetensors, last.safetensors   links to files in models/
    RUN/models/step-00001234-val1.2345.safetensors
    RUN/state/step-00001234.safetensors      complete training states (checkpoint.py)
    RUN/metrics.jsonl                         one line per validation
    RUN/steps.jsonl                           one line per step: step, loss, lr
    RUN/data/                                 the prepared corpus, when train made it
    RUN/run.json                              the run's id, given when it was claimed
    RUN/.lock                                 while a process writes the run: its pid

One process at a time writes a run: it holds an exclusive lock (flock) on RUN/.lock
from before its first change to the end of the run, and the kernel drops the lock
when the process dies, so a killed writer leaves no stale lock. Readers take none.
Writes go through atomic.py; what a state file holds is checkpoint.py's business.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import uuid
from pathlib import Path
from typing import NamedTuple

from ..atomic import (
    FileLock,
    LineLog,
    LockHeld,
    atomic_link,
    atomic_write_bytes,
    cut_json_lines,
    read_json_lines,
    remove_temporaries,
)
from ..config import TrainConfig
from ..errors import CharRNNError, ModelFileError
from ..model.modelfile import EXTENSION, LoadedModel, load_model, save_model
from . import checkpoint
from .schedule import LoopState, stop_reason

METRICS_LOG = "metrics.jsonl"  # one line per validation
STEP_LOG = "steps.jsonl"  # one line per step: step, loss, lr
STATE_DIR = "state"  # training states
MODELS_DIR = "models"  # model files named by step and validation loss
DATA_DIR = "data"  # the prepared corpus
RUN_FILE = "run.json"  # {"run_id": ...}: recorded in every state, so a stranger's is known
LOCK_FILE = ".lock"  # flocked by the one process writing the run; holds its pid
_STATE_NAME = re.compile(r"^step-(\d+)\.safetensors$")


class RunDir:
    """One run directory. Only rank 0 of a distributed run calls the writing methods."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._steps = LineLog(self.path / STEP_LOG)
        self._lock = FileLock(self.lock_file)
        self._made: Path | None = None  # the topmost folder lock() created, if any
        # The directory's entries when the lock was taken; None while it is not held.
        # (Where there are no locks, Windows, the RunDir still keeps this record.)
        self._found: set[str] | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- layout ---------------------------------------------------------------
    @property
    def best_model(self) -> Path:
        return self.path / f"best{EXTENSION}"

    @property
    def last_model(self) -> Path:
        return self.path / f"last{EXTENSION}"

    @property
    def models_dir(self) -> Path:
        return self.path / MODELS_DIR

    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    @property
    def data_dir(self) -> Path:
        return self.path / DATA_DIR

    @property
    def metrics_log(self) -> Path:
        return self.path / METRICS_LOG

    @property
    def step_log(self) -> Path:
        return self.path / STEP_LOG

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def run_id(self) -> str | None:
        """The id this directory's run was given when claimed (None: an older run, or
        the file is gone or damaged)."""
        try:
            run_id = json.loads(self.run_file.read_text(encoding="utf-8")).get("run_id")
        except (OSError, ValueError, AttributeError):
            return None
        return run_id if isinstance(run_id, str) else None

    def _new_run_id(self) -> str:
        run_id = uuid.uuid4().hex
        atomic_write_bytes(self.run_file, json.dumps({"run_id": run_id}).encode())
        return run_id

    # -- the lock ---------------------------------------------------------------
    @property
    def locked(self) -> bool:
        """Whether this RunDir holds the run directory's lock."""
        return self._found is not None

    def lock(self) -> None:
        """Take the run directory's exclusive lock, creating the directory if need be;
        a CharRNNError naming the holder's pid when another process (or another RunDir)
        holds it. Held until `unlock` or `close`, or the process ends. Does nothing
        when this RunDir holds it already."""
        if self.locked:
            return
        made = None
        for _ in range(FileLock.ATTEMPTS):
            made = _make_folders(self.path) or made
            try:
                self._lock.acquire()
            except FileNotFoundError:  # an abandoning holder removed the directory meanwhile
                continue
            except LockHeld as held:
                raise CharRNNError(
                    f"{self.path} is in use by another charrnn process (pid {held.pid}); "
                    "wait for it to finish, or train elsewhere with --out DIR"
                ) from None
            self._made = made
            self._found = {p.name for p in self.path.iterdir()} - {LOCK_FILE}
            return
        raise CharRNNError(f"{self.lock_file}: could not be locked (its folder kept vanishing)")

    def unlock(self) -> None:
        """Release the lock (when held)."""
        self._lock.release()
        self._found = None

    @contextlib.contextmanager
    def attempt(self, take_lock: bool = True):
        """A block that starts or resumes a run: the lock is taken first (unless not
        `take_lock`: under torchrun the ranks but 0, which write nothing), and if the
        block raises, what it added here is removed (`abandon`). On success the lock
        stays held, for the run; `close` releases it."""
        if take_lock:
            self.lock()
        try:
            yield self
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        """Undo an attempt that never started a run: remove the entries that are new
        since the lock was taken, and the directory itself (and its parents left empty)
        when lock() created it; then release the lock. Nothing that was here before is
        touched. Does nothing when this RunDir holds no lock."""
        if not self.locked:
            return
        self._steps.close()
        for entry in self.path.iterdir():
            if entry.name in self._found or entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        self.unlock()
        if self._made is not None:
            _remove_empty_folders(self.path, self._made)
            self._made = None

    # -- claiming ---------------------------------------------------------------
    def holds_run(self) -> bool:
        """Whether a run has written models or states here."""
        models = (self.best_model, self.last_model)
        return any(p.exists() for p in models) or self.state_dir.is_dir()

    def check_unclaimed(self, force: bool = False) -> None:
        """Refuse to start a new run over an old one, unless `force`."""
        if force or not self.holds_run():
            return
        state = self.latest_state()
        where = f" (a training state at step {state.meta['loop']['step']})" if state else ""
        if state is not None and _finished(state):
            further = f"it is finished: `--resume {self.path} --max-time SECONDS` trains it further"
        else:
            further = f"pass --resume {self.path} to continue it"
        raise CharRNNError(
            f"{self.path} already holds a training run{where}; {further}, --force to start "
            "over (deleting it), or --out DIR to train elsewhere"
        )

    def claim(self, force: bool = False) -> None:
        """Make this the directory of a new run: refuse an old run, or with `force`
        delete its models, states and logs (a prepared corpus in data/ stays).
        Under the lock (taken here when not held yet)."""
        self.lock()
        self.check_unclaimed(force)
        if force:
            for path in (self.best_model, self.last_model, self.metrics_log, self.step_log):
                path.unlink(missing_ok=True)
            for folder in (self.state_dir, self.models_dir):
                shutil.rmtree(folder, ignore_errors=True)
        self._new_run_id()

    def tidy(self) -> int:
        """Create the directory; delete temporaries left by a killed writer (how many).
        Under the lock (taken here when not held yet): a live writer's are its own."""
        self.lock()
        self.path.mkdir(parents=True, exist_ok=True)
        folders = (self.path, self.state_dir, self.models_dir, self.data_dir)
        return sum(remove_temporaries(folder) for folder in folders)

    # -- training states ---------------------------------------------------------
    def state_path(self, step: int) -> Path:
        return self.state_dir / f"step-{step:08d}.safetensors"

    def state_files(self) -> list[Path]:
        """The state files, newest (highest step) first."""
        if not self.state_dir.is_dir():
            return []
        found = [
            (int(m.group(1)), p)
            for p in self.state_dir.iterdir()
            if (m := _STATE_NAME.match(p.name))
        ]
        return [p for _, p in sorted(found, reverse=True)]

    def latest_state(self, skipped: list[str] | None = None) -> checkpoint.TrainingState | None:
        """The newest state that loads. Damaged files (charrnn never leaves one, but a disk
        or a person can) are passed over, their errors appended to `skipped`."""
        for path in self.state_files():
            try:
                return checkpoint.load_state(path)
            except ModelFileError as exc:
                if skipped is not None:
                    skipped.append(str(exc))
        return None

    def check_own(self, state: checkpoint.TrainingState) -> None:
        """Refuse a state that another run wrote (copied in by hand, say): resuming
        from it would continue that run's weights over this run's logs and models."""
        own, recorded = self.run_id, state.meta.get("run_id")
        if own and recorded and own != recorded:
            raise CharRNNError(
                f"{state.path}: a training state of another run (run id {str(recorded)[:8]}, "
                f"not this run's {own[:8]}); move it out of {self.state_dir} to resume"
            )

    def save_state(self, step: int, meta: dict, tensors: dict, keep: int) -> Path:
        """Write the state of `step`, with the run's id (the step log first, so that
        it covers the state), then delete all but the `keep` newest states."""
        self._steps.flush()
        path = self.state_path(step)
        meta = {**meta, "run_id": self.run_id or self._new_run_id()}
        checkpoint.save_state(path, meta, tensors)
        for old in self.state_files()[max(keep, 1) :]:
            old.unlink(missing_ok=True)
        return path

    # -- models -------------------------------------------------------------------
    def model_files(self) -> list[Path]:
        """The named model files, newest first."""
        return sorted(self.models_dir.glob(f"step-*{EXTENSION}"), reverse=True)

    def publish_model(
        self, model, vocab, info: dict, *, step: int, val_nats: float, best: bool, keep: int
    ) -> Path:
        """Write a validated model once, under a name that says its step and validation
        loss; make last (and, when `best`, best) the same file; keep the `keep` newest
        named files and the best one."""
        named = self.models_dir / f"step-{step:08d}-val{val_nats:.4f}{EXTENSION}"
        save_model(named, model, vocab, info)
        atomic_link(named, self.last_model)
        if best:
            atomic_link(named, self.best_model)
        best_inode = self.best_model.stat().st_ino if self.best_model.exists() else None
        for path in self.model_files()[keep:]:
            if path.stat().st_ino != best_inode:
                path.unlink()
        return named

    # -- logs -----------------------------------------------------------------------
    def log_step(self, record: dict) -> None:
        """Append to the step log (buffered until the next state is saved, or close)."""
        self._steps.append(record)

    def log_metrics(self, record: dict) -> None:
        log = LineLog(self.metrics_log)
        log.append(record)
        log.close()

    def close(self) -> None:
        """Flush and close the step log; release the lock (the run is over)."""
        self._steps.close()
        self.unlock()

    def metrics(self, damaged: list[int] | None = None) -> list[dict]:
        """The validation records; the numbers of damaged lines (skipped) go to `damaged`."""
        return read_json_lines(self.metrics_log, damaged, _is_metrics_record)

    def steps(self, damaged: list[int] | None = None) -> list[dict]:
        return read_json_lines(self.step_log, damaged, _has_step)

    def damaged_logs(self, steps: bool = True) -> list[str]:
        """One line per log (the metrics log, and with `steps` the step log) with
        damaged lines: which, and that they are skipped."""
        logs = [(self.metrics_log, self.metrics)] + [(self.step_log, self.steps)] * steps
        messages = []
        for path, read in logs:
            damaged: list[int] = []
            read(damaged)
            if damaged:
                shown = ", ".join(map(str, damaged[:5])) + (" ..." if len(damaged) > 5 else "")
                messages.append(
                    f"{path}: {len(damaged)} damaged line(s) skipped (line {shown}); "
                    "they stay in the file"
                )
        return messages

    def cut_logs(self, step: int, metrics: bool = True) -> None:
        """Drop the records of steps after `step`: they belong to steps that will be
        redone (a resume, or a rollback; the latter keeps its validations). Damaged
        lines stay (atomic.cut_json_lines)."""
        self._steps.close()  # its buffered lines are part of the log to cut
        for path in [self.step_log] + ([self.metrics_log] if metrics else []):
            cut_json_lines(path, lambda r: not _has_step(r) or r["step"] <= step)


def _finished(state: checkpoint.TrainingState) -> bool:
    """Whether the run of `state` has spent its budget or its patience."""
    meta = state.meta
    return stop_reason(TrainConfig(**meta["train_config"]), LoopState(**meta["loop"])) is not None


def _make_folders(path: Path) -> Path | None:
    """Create `path` and its missing parents; return the topmost one created (None:
    `path` was there)."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    return missing[-1] if missing else None


def _remove_empty_folders(path: Path, top: Path) -> None:
    """Remove `path` and its parents up to `top`, as long as each is empty."""
    for folder in [path, *path.parents]:
        try:
            folder.rmdir()
        except OSError:  # not empty: another run lives there now, or someone's files
            return
        if folder == top:
            return


def _has_step(record: dict) -> bool:
    step = record.get("step")
    return isinstance(step, int) and not isinstance(step, bool) and step >= 0


# The figures of a validation record (trainer.py), each a number or null.
_METRICS_FIGURES = (
    "time",
    "train_loss",
    "val_loss",
    "val_bpc",
    "lr",
    "chars_per_s",
    "epoch",
    "grad_norm_mean",
    "grad_norm_max",
    "clipped_share",
    "grad_steps",
)


def _is_metrics_record(record: dict) -> bool:
    """A validation record that views can show: a step, and its figures numbers or null."""
    figures = (record.get(k) for k in _METRICS_FIGURES)
    return _has_step(record) and all(
        value is None
        or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
        for value in figures
    )


def find_run(path: str | Path, model_path: str | Path) -> RunDir | None:
    """The run a model belongs to, when it has a metrics log: `path` itself (a run
    directory), the folder of RUN/best.safetensors, or the RUN of RUN/models/step-...."""
    path, model_path = Path(path), Path(model_path)
    folders = [path] if path.is_dir() else [model_path.parent]
    if model_path.parent.name == MODELS_DIR:
        folders.append(model_path.parent.parent)
    for folder in folders:
        run = RunDir(folder)
        if run.metrics_log.is_file():
            return run
    return None


class RunRecord(NamedTuple):
    """A model file, read, and the validation history of the run it belongs to."""

    loaded: LoadedModel
    metrics_path: Path | None  # the run's metrics log, where one was found
    history: list[dict]  # one record per validation: step, train_loss, val_loss, ...
    warnings: list[str]  # damaged lines skipped in the log


def read_run(path: str | Path) -> RunRecord:
    """A model file or a run directory (its best model), and its run's metrics log when
    it belongs to a run that has one (find_run); damaged lines are skipped, named in
    `warnings`."""
    path = Path(path)
    loaded = load_model(path)
    run = find_run(path, loaded.path)
    if run is None:
        return RunRecord(loaded, None, [], [])
    return RunRecord(loaded, run.metrics_log, run.metrics(), run.damaged_logs(steps=False))
