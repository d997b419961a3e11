"""Training: truncated BPTT over contiguous batch streams, AdamW, time-aware LR schedule.

The training text is cut into `batch_size` contiguous streams, read side by
side `seq_len` characters at a time; the hidden state is carried from one
batch to the next (detached), so the model learns dependencies longer than a
batch. No printing here: progress goes to a `Reporter` the caller provides.

Under torchrun (see runtime.py) each of W processes owns B/W of those streams
and its own carried state; DistributedDataParallel averages the gradients, rank
0's clock and stop requests decide for all, and only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from ..atomic import atomic_write_bytes
from ..config import ModelConfig, TrainConfig
from ..errors import CharRNNError
from ..inference.score import score_ids
from ..model.modelfile import EXTENSION, save_model
from ..model.network import CharRNN, detach_state, select_state
from ..text.corpus import PreparedCorpus, load_prepared
from . import checkpoint
from .runtime import Runtime

AUTO_EVAL_SHARE = 0.05  # share of the budget automatic validations should take together
AUTO_EVALS_MAX = 50  # automatic validations per run, at most
FAULTS_BEFORE_ROLLBACK = 3  # consecutive non-finite steps before going back to a good state
MAX_ROLLBACKS = 4  # rollbacks (each halving the learning rate) before giving up
METRICS_LOG = "metrics.jsonl"  # one line per validation
STEP_LOG = "steps.jsonl"  # one line per step: step, loss, lr


class TrainingInterrupted(Exception):
    """Training stopped on request (a signal) after saving a complete state."""

    def __init__(self, step: int, run_dir: Path):
        self.step, self.run_dir = step, run_dir
        super().__init__(f"stopped at step {step}; state saved in {run_dir}")


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


class Reporter:
    """Receives training progress. The default does nothing; the CLI draws a bar."""

    def on_start(self, info: dict) -> None: ...

    def on_step(self, step: int, loss: float, lr: float, progress: float) -> None: ...

    def on_eval(self, record: dict) -> None: ...

    def on_end(self, result: TrainResult) -> None: ...

    def on_fault(self, message: str) -> None: ...


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    chars_seen: int
    train_seconds: float  # wall clock of the loop, periodic validations included
    eval_seconds: float  # of which spent validating
    chars_per_s: float  # training throughput, validation time excluded
    best_val_nats: float
    last_val_nats: float
    best_model: Path
    last_model: Path
    parameters: int
    history: list[dict] = field(default_factory=list)

    @property
    def best_val_bpc(self) -> float:
        return self.best_val_nats / math.log(2)

    def to_dict(self) -> dict:
        return {
            "model": str(self.best_model),
            "last_model": str(self.last_model),
            "steps": self.steps,
            "chars_seen": self.chars_seen,
            "train_seconds": round(self.train_seconds, 2),
            "eval_seconds": round(self.eval_seconds, 2),
            "chars_per_s": round(self.chars_per_s, 1),
            "best_val_nats": self.best_val_nats,
            "best_val_bpc": self.best_val_bpc,
            "last_val_nats": self.last_val_nats,
            "parameters": self.parameters,
        }


class BatchStreams:
    """`batch_size` contiguous streams over the training ids, read seq_len at a time.

    ids = [a b c d e f g h i j k l]; batch_size 2, seq_len 3:
        stream 0: a b c | d e f        inputs  x[:, t:t+3]
        stream 1: g h i | j k l        targets y[:, t:t+3] (shifted by one)
    When a stream runs out the next epoch starts and the state is reset.
    `rows` picks some of the streams (one process's share under DDP); the
    layout, and so the position and epoch, stay those of all `batch_size`.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, rows: slice = slice(None)):
        self.length = (len(ids) - 1) // batch_size  # characters per stream
        if self.length < seq_len:
            need = batch_size * seq_len + 1
            raise CharRNNError(
                f"training text too short: {len(ids)} characters; batch size {batch_size} "
                f"x sequence length {seq_len} needs at least {need}"
            )
        span = self.length * batch_size
        # (B, length) views into the memmap, then this process's rows
        self.inputs = ids[:span].reshape(batch_size, self.length)[rows]
        self.targets = ids[1 : span + 1].reshape(batch_size, self.length)[rows]
        self.seq_len = seq_len
        self.position = 0
        self.epoch = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(inputs, targets) each (B, T) int64, and whether a new epoch began."""
        new_epoch = self.position + self.seq_len > self.length
        if new_epoch:
            self.position, self.epoch = 0, self.epoch + 1
        window = slice(self.position, self.position + self.seq_len)
        self.position += self.seq_len
        x = torch.from_numpy(self.inputs[:, window].astype(np.int64))
        y = torch.from_numpy(self.targets[:, window].astype(np.int64))
        return x, y, new_epoch


class Trainer:
    """One training run in a run directory: fresh (`Trainer(...)`) or resumed (`Trainer.resume`)."""

    def __init__(
        self,
        corpus: PreparedCorpus,
        model_config: ModelConfig,
        config: TrainConfig,
        run_dir: str | Path,
        reporter: Reporter | None = None,
        runtime: Runtime | None = None,
    ):
        self.corpus, self.model_config, self.config = corpus, model_config, config
        self.runtime = runtime or Runtime()
        self.group = group = self.runtime.group
        self.run_dir = Path(run_dir)
        self.reporter = reporter or Reporter()
        rows = group.rows(config.batch_size)
        if group.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.remove_stale_temporaries(self.run_dir)
        torch.manual_seed(config.seed)
        self.model = CharRNN(model_config).to(self.runtime.device)
        if group.rank > 0:
            torch.manual_seed(config.seed + group.rank)  # dropout masks of its own per rank
        # DDP broadcasts rank 0's weights, then averages gradients during backward.
        self.network = (
            DistributedDataParallel(self.model, device_ids=self._device_ids())
            if group.distributed
            else self.model
        )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            betas=(0.9, 0.99),
            weight_decay=config.weight_decay,
        )
        self.scaler = self.runtime.grad_scaler()
        self.streams = BatchStreams(corpus.train, config.batch_size, config.seq_len, rows)
        self.loop = LoopState()
        self.hidden = None  # carried recurrent state, torch layout
        self.history: list[dict] = []
        self.best_path = self.run_dir / f"best{EXTENSION}"
        self.last_path = self.run_dir / f"last{EXTENSION}"
        self.info = {
            "train_config": asdict(config),
            "corpus": corpus.meta.get("sources", [{}])[0].get("path"),
            "train_chars": len(corpus.train),
            "val_chars": len(corpus.val),
            "runtime": self.runtime.describe(),
        }

    def _device_ids(self) -> list[int] | None:
        device = self.runtime.device
        return [device.index] if device.type == "cuda" else None

    # -- states ---------------------------------------------------------------
    def state_parts(self) -> tuple[dict, dict]:
        """(JSON metadata, named tensors) of the complete training state.

        Under DDP every rank must call it (it gathers): the carried state of all
        ranks, joined in the one-process layout (L, B, H), and each rank's RNGs.
        """
        rng_meta, rng_tensors = checkpoint.capture_rng()
        groups, optim_tensors = checkpoint.optimizer_to_tensors(self.optimizer)
        self.loop.position, self.loop.epoch = self.streams.position, self.streams.epoch
        meta = {
            "model_config": asdict(self.model_config),
            "train_config": asdict(self.config),
            "corpus_dir": str(self.corpus.directory.resolve()),
            "vocab": list(self.corpus.vocab.chars),
            "loop": asdict(self.loop),
            "optim_groups": groups,
            "rng": rng_meta,
            "runtime": self.runtime.describe(),  # for the record; a resume may change it
        }
        if self.scaler.is_enabled():
            meta["grad_scaler"] = self.scaler.state_dict()
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(optim_tensors)
        tensors.update(rng_tensors)
        for rank, value in enumerate(self.group.gather(torch.get_rng_state())[1:], start=1):
            tensors[f"rng.torch.rank{rank}"] = value
        if self.runtime.device.type == "cuda":
            for rank, value in enumerate(self.group.gather(torch.cuda.get_rng_state())):
                tensors[f"rng.cuda.rank{rank}"] = value
        if self.hidden is not None:
            parts = self.hidden if isinstance(self.hidden, tuple) else (self.hidden,)
            for i, h in enumerate(parts):
                # float32 whatever the autocast dtype, so any precision can resume it
                tensors[f"hidden.{i}"] = torch.cat(self.group.gather(h.float()), dim=1)
        return meta, tensors

    def save_state(self) -> Path:
        """Write the complete training state, flush the step log, prune old states.
        Under DDP all ranks call it; rank 0 writes."""
        path = checkpoint.state_path(self.run_dir, self.loop.step)
        parts = self.state_parts()
        self._last_save = self.loop.elapsed
        if self.group.is_main:
            self._step_log.flush()
            checkpoint.save_state(path, *parts)
            checkpoint.prune_states(self.run_dir, self.config.keep)
        return path

    def load(self, state: checkpoint.TrainingState) -> None:
        """Restore everything from `state` (weights, optimizer, data position, RNGs).

        The state may come from another number of processes: the carried state is
        stored for all B streams, and each rank takes its own rows.
        """
        device, rank = self.runtime.device, self.group.rank
        self.model.load_state_dict(state.group("model"))
        checkpoint.optimizer_from_tensors(self.optimizer, state)
        if self.scaler.is_enabled() and "grad_scaler" in state.meta:
            self.scaler.load_state_dict(state.meta["grad_scaler"])
        self.loop = LoopState(**state.meta["loop"])
        self.streams.position, self.streams.epoch = self.loop.position, self.loop.epoch
        hidden = [state.tensors[f"hidden.{i}"] for i in range(2) if f"hidden.{i}" in state.tensors]
        if hidden:
            full = tuple(hidden) if len(hidden) == 2 else hidden[0]
            if self.group.distributed:
                full = select_state(full, self.group.rows(self.config.batch_size))
            parts = full if isinstance(full, tuple) else (full,)
            parts = tuple(h.to(device).contiguous() for h in parts)
            self.hidden = parts if len(parts) == 2 else parts[0]
        else:
            self.hidden = None
        checkpoint.restore_rng(state)
        if rank > 0:
            own = state.tensors.get(f"rng.torch.rank{rank}")
            if own is not None:
                torch.set_rng_state(own)
            else:  # a state from fewer processes: fresh dropout masks for this rank
                torch.manual_seed(self.config.seed + rank + 7919 * self.loop.step)
        cuda_rng = state.tensors.get(f"rng.cuda.rank{rank}")
        if device.type == "cuda" and cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng)

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        reporter: Reporter | None = None,
        runtime: Runtime | None = None,
    ) -> Trainer:
        """A Trainer continuing the newest complete state in `run_dir`."""
        run_dir = Path(run_dir)
        runtime = runtime or Runtime()
        if runtime.group.is_main:
            checkpoint.remove_stale_temporaries(run_dir)
        skipped: list[str] = []
        state = checkpoint.latest_state(run_dir, skipped)
        if state is None:
            reason = f" ({skipped[0]})" if skipped else ""
            raise CharRNNError(f"{run_dir}: no training state to resume from{reason}")
        meta = state.meta
        corpus = load_prepared(meta["corpus_dir"])
        if list(corpus.vocab.chars) != meta["vocab"]:
            raise CharRNNError(f"{meta['corpus_dir']}: the prepared corpus changed since the run")
        trainer = cls(
            corpus,
            ModelConfig(**meta["model_config"]),
            TrainConfig(**meta["train_config"]),
            run_dir,
            reporter,
            runtime,
        )
        trainer.load(state)
        for message in skipped:
            trainer.reporter.on_fault(f"skipped a damaged training state: {message}")
        step = trainer.loop.step
        if trainer.group.is_main:
            # Logs written after this state belong to steps that will be redone.
            for name in (METRICS_LOG, STEP_LOG):
                _truncate_log(run_dir / name, step)
        trainer.history = [r for r in read_log(run_dir / METRICS_LOG) if r["step"] <= step]
        return trainer

    # -- the loop ---------------------------------------------------------------
    def _start_clock(self) -> None:
        """Count the run's time on from loop.elapsed (a fresh start, a resume, a rollback)."""
        self._clock_origin = (time.perf_counter(), self.loop.elapsed)

    def _clock(self) -> float:
        """Seconds of this run so far, validations included (this rank's clock)."""
        started, elapsed_before = self._clock_origin
        return elapsed_before + time.perf_counter() - started

    def run(self, should_stop=lambda: False) -> TrainResult:
        """Train until the budget is spent, or `should_stop()` says so (then save and raise
        TrainingInterrupted)."""
        config, loop = self.config, self.loop
        self.reporter.on_start(
            {
                **self.info,
                "parameters": self.model.num_parameters(),
                "model_config": asdict(self.model_config),
                "resumed_at": loop.step,
            }
        )
        log_path = self.run_dir / STEP_LOG if self.group.is_main else os.devnull
        self._step_log = open(log_path, "a", encoding="utf-8")
        try:
            if loop.step == 0:
                self.save_state()  # a good state to roll back to from the first step
            self._last_save = loop.elapsed
            faults = 0
            self.model.train()
            self._start_clock()
            while True:
                # Rank 0's clock and stop request, so that all ranks take the same branches.
                elapsed, stop = self.group.from_main(self._clock(), should_stop())
                loop.elapsed = elapsed
                progress = config.progress(loop.elapsed, loop.step)
                if progress >= 1.0:
                    break
                if stop:
                    self.save_state()
                    raise TrainingInterrupted(loop.step, self.run_dir)
                lr = config.learning_rate(loop.step, progress) * loop.lr_scale
                loss = self._step(lr)
                if loss is None:
                    faults += 1
                    if faults >= FAULTS_BEFORE_ROLLBACK:
                        self._roll_back()
                        faults = 0
                        self._start_clock()
                    continue
                faults = 0
                self.reporter.on_step(loop.step, loss, lr, progress)
                if self._eval_due():
                    self._evaluate()
                if loop.elapsed - self._last_save >= config.checkpoint_every:
                    self.save_state()
            loop_eval_seconds = loop.eval_seconds
            (evaluated,) = self.group.from_main(
                bool(self.history) and self.history[-1]["step"] == loop.step
            )
            if not evaluated:
                self._evaluate()
            self.save_state()
        finally:
            self._step_log.close()
        result = TrainResult(
            out_dir=self.run_dir,
            steps=loop.step,
            chars_seen=loop.chars_seen,
            train_seconds=loop.elapsed,
            eval_seconds=loop_eval_seconds,
            chars_per_s=loop.chars_seen / max(loop.elapsed - loop_eval_seconds, 1e-9),
            best_val_nats=loop.best_nats,
            last_val_nats=self.history[-1]["val_loss"],
            best_model=self.best_path,
            last_model=self.last_path,
            parameters=self.model.num_parameters(),
            history=self.history,
        )
        self.reporter.on_end(result)
        return result

    def _step(self, lr: float) -> float | None:
        """One optimisation step; None (and no update) when the loss or gradient is not finite."""
        loop = self.loop
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y, new_epoch = self.streams.next()  # (B/W, T) each: this rank's streams
        x = x.to(self.runtime.device, non_blocking=True)
        y = y.to(self.runtime.device, non_blocking=True)
        if new_epoch:
            self.hidden = None
        with self.runtime.autocast():
            logits, hidden = self.network(x, detach_state(self.hidden))  # (B/W, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loop.step += 1
        loop.chars_seen += x.numel() * self.group.world_size
        # The mean over all ranks (equal shares: the mean of means is the global mean);
        # all ranks then agree on whether the step is finite, and all or none run backward.
        (value,) = self.group.sum(loss.item())
        value /= self.group.world_size
        finite = math.isfinite(value)
        if finite:
            self.scaler.scale(loss).backward()  # DDP all-reduces (averages) gradients here
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            # With fp16 an overflowing gradient is routine: the scaler skips that update and
            # lowers its scale. Otherwise a non-finite gradient is a fault.
            finite = self.scaler.is_enabled() or bool(torch.isfinite(norm))
        if not finite:
            # Never let a non-finite value reach the weights or the carried state.
            self.optimizer.zero_grad(set_to_none=True)
            self.hidden = None
            self.reporter.on_fault(f"step {loop.step}: non-finite loss or gradient, skipped")
            return None
        self.scaler.step(self.optimizer)  # optimizer.step() unless fp16 overflowed
        self.scaler.update()
        self.hidden = hidden
        loop.loss_sum += value
        loop.loss_count += 1
        self._step_log.write(json.dumps({"step": loop.step, "loss": value, "lr": lr}) + "\n")
        return value

    def _roll_back(self) -> None:
        """Back to the newest saved state, with half the learning rate."""
        loop = self.loop
        if loop.rollbacks >= MAX_ROLLBACKS:
            raise CharRNNError(
                f"training diverged: non-finite losses persisted after {MAX_ROLLBACKS} "
                f"rollbacks; last good state is in {self.run_dir / checkpoint.STATE_DIR}; "
                "try a lower --lr"
            )
        scale, rollbacks = loop.lr_scale * 0.5, loop.rollbacks + 1
        state = checkpoint.latest_state(self.run_dir)
        self.load(state)
        self.loop.lr_scale, self.loop.rollbacks = scale, rollbacks
        if self.group.is_main:
            _truncate_log(self.run_dir / STEP_LOG, self.loop.step)
        self.reporter.on_fault(
            f"rolled back to step {self.loop.step} with learning rate x{scale:g}"
        )

    def _prune_models(self) -> None:
        """Keep the `keep` newest named model files, and the best one."""
        named = sorted(
            (self.run_dir / checkpoint.MODELS_DIR).glob(f"step-*{EXTENSION}"), reverse=True
        )
        best = self.best_path.stat().st_ino if self.best_path.exists() else None
        for path in named[self.config.keep :]:
            if path.stat().st_ino != best:
                path.unlink()

    def _eval_due(self) -> bool:
        """Validate every eval_every steps, or automatically at evenly spaced points of
        the budget (see auto_eval_intervals).

        The cost is the last validation's time, or before the first, an estimate
        from training throughput (a forward pass is about a third of a step).
        """
        config, loop = self.config, self.loop
        if config.eval_every > 0:
            return loop.step % config.eval_every == 0
        progress = config.progress(loop.elapsed, loop.step)
        if progress < loop.next_eval or loop.next_eval >= 1.0:
            return False
        budget = config.max_time if config.max_time > 0 else loop.elapsed / max(progress, 1e-9)
        speed = loop.chars_seen / max(loop.elapsed - loop.eval_seconds, 1e-9)
        cost = loop.last_eval_seconds or len(self.corpus.val) / max(3 * speed, 1.0)
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

    def _evaluate(self) -> None:
        """Score the whole validation text (in float32 whatever the training precision, so
        figures compare with `charrnn score`). Under DDP each rank scores a share of its
        segments and the sums are added up: the same figure as one process gets."""
        loop, group = self.loop, self.group
        # loop.elapsed was read before the step just taken; the record wants the time
        # now. Subtract only earlier validations.
        now = self._clock()
        training_seconds = max(now - loop.eval_seconds, 1e-9)
        began = time.perf_counter()
        share = score_ids(
            self.model, self.corpus.vocab, self.corpus.val, part=(group.rank, group.world_size)
        )
        self.model.train()
        nats, chars = group.sum(share.nats, share.chars)
        val_nats = nats / chars if chars else float("nan")
        # Rank 0's timing for all, since later decisions (_eval_due) depend on it.
        (loop.last_eval_seconds,) = group.from_main(time.perf_counter() - began)
        loop.eval_seconds += loop.last_eval_seconds
        record = {
            "step": loop.step,
            "time": round(now, 2),
            "train_loss": loop.loss_sum / loop.loss_count if loop.loss_count else None,
            "val_loss": val_nats,
            "val_bpc": val_nats / math.log(2),
            "lr": self.optimizer.param_groups[0]["lr"],
            "chars_per_s": loop.chars_seen / training_seconds,
            "epoch": self.streams.epoch,
        }
        loop.loss_sum, loop.loss_count = 0.0, 0
        if not math.isfinite(val_nats):
            raise CharRNNError(f"validation loss became {val_nats} at step {loop.step}; lower --lr")
        self.history.append(record)
        if loop.best_nats is None or val_nats < loop.best_nats:
            loop.best_nats, improved = val_nats, True
        else:
            improved = False
        if not group.is_main:
            return
        info = {**self.info, "step": loop.step, "chars_seen": loop.chars_seen, "val_nats": val_nats}
        # The model is written once, under a name that says its step and validation loss;
        # last/best are links to it (or copies where links are not supported).
        named = (
            self.run_dir
            / checkpoint.MODELS_DIR
            / f"step-{loop.step:08d}-val{val_nats:.4f}{EXTENSION}"
        )
        save_model(named, self.model, self.corpus.vocab, info)
        link_or_copy(named, self.last_path)
        if improved:
            link_or_copy(named, self.best_path)
        self._prune_models()
        with (self.run_dir / METRICS_LOG).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        self.reporter.on_eval(record)


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


def link_or_copy(source: Path, target: Path) -> None:
    """Make `target` the same file as `source`, replacing it atomically."""
    tmp = target.with_name(f".{target.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def read_log(path: Path) -> list[dict]:
    """The records of a JSON-lines log (metrics or steps); none when it is missing."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a kill: it and anything after are dropped
    return records


def _truncate_log(path: Path, step: int) -> None:
    """Keep only the records of steps <= `step` (atomically)."""
    if path.exists():
        kept = [r for r in read_log(path) if r["step"] <= step]
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in kept).encode())


def train(
    corpus: PreparedCorpus,
    model_config: ModelConfig,
    config: TrainConfig,
    out_dir: str | Path,
    reporter: Reporter | None = None,
    should_stop=lambda: False,
    runtime: Runtime | None = None,
) -> TrainResult:
    """Train a fresh CharRNN on `corpus`; best and last models and states go to `out_dir`."""
    return Trainer(corpus, model_config, config, out_dir, reporter, runtime).run(should_stop)
