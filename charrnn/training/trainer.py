"""The training loop: truncated BPTT over contiguous batch streams, AdamW, a
time-aware learning-rate schedule, validation, and rollback after numerical faults.

The training text is cut into `batch_size` contiguous streams (batches.py), read
side by side `seq_len` characters at a time; the hidden state is carried from
one batch to the next (detached), so the model learns dependencies longer than
a batch. No printing here: progress goes to a `Reporter` the caller provides.
The run directory's files are RunDir's; the state's contents are checkpoint's.

Under torchrun (see runtime.py) each of W processes owns B/W of those streams
and its own carried state; DistributedDataParallel averages the gradients, rank
0's clock and stop requests decide for all, and only rank 0 writes files.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch.nn import functional as F

from ..config import ModelConfig, SampleConfig, TrainConfig
from ..errors import CharRNNError, TrainingInterrupted
from ..inference.blas_threads import ThreadTuner, candidate_counts
from ..inference.sample import sample_text
from ..inference.score import score_ids
from ..model.layout import decayed_weights
from ..model.modelfile import load_model
from ..model.network import CharRNN, detach_state, float32_state
from ..text.corpus import PreparedCorpus
from . import checkpoint
from .batches import BatchStreams
from .policy import default_batch_size, is_small_text
from .rundir import RunDir
from .runtime import Runtime
from .schedule import (
    PLATEAU_FACTOR,
    Clock,
    EvalSchedule,
    LoopState,
    learning_rate,
    progress,
    stop_description,
    stop_reason,
    validation_chars,
)

# torch's CPU threads are chosen while training, by timing blocks of steps with each
# count (inference/blas_threads.ThreadTuner, as the sampler's BLAS threads are). With
# two OpenMP threads each, two trainings on a 2-core machine spun against each other
# down to 0.20x of their solo speed; with one thread each they kept 0.66x, where one
# thread alone runs at 0.66x of two (benchmarks/concurrent.py, AMD EPYC Zen 4). With a
# softmax output the count does not change the results (checked bit for bit in
# tests/test_threads.py, AVX-512 and AVX2 kernels), so a run stays exactly repeatable;
# the adaptive softmax's results do depend on it (a 1e-7 difference after 5 steps), so
# an adaptive model keeps the count torch started with.
THREAD_BLOCK_STEPS, THREAD_BLOCKS = 4, 2  # a round: 2 blocks of 4 steps per count
THREAD_RUN_STEPS, THREAD_MAX_RUN_STEPS = 256, 2048  # steps between rounds

FAULTS_BEFORE_ROLLBACK = 3  # consecutive non-finite steps before going back to a good state
MAX_ROLLBACKS = 4  # rollbacks (each halving the learning rate) before giving up


class Reporter:
    """Receives training progress. The default does nothing; the CLI draws a bar.

    Notes are for information (the CLI's --quiet drops them); warnings are advice
    worth seeing; faults are numerical trouble met and handled during training.
    """

    def on_start(self, info: dict) -> None: ...

    def on_step(self, step: int, loss: float, lr: float, progress: float) -> None: ...

    def on_eval(self, record: dict) -> None: ...

    def on_end(self, result: TrainResult) -> None: ...

    def on_fault(self, message: str) -> None: ...

    def on_note(self, message: str) -> None: ...

    def on_warning(self, message: str) -> None: ...


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    chars_seen: int
    train_seconds: float  # wall clock of the loop and its closing validation
    eval_seconds: float  # of which spent validating
    chars_per_s: float  # training throughput, validation time excluded
    best_val_nats: float
    last_val_nats: float
    best_model: Path
    last_model: Path
    parameters: int
    stop_reason: str  # schedule.STOP_REASONS: "time", "steps" (the budget) or "patience"
    stopped_by: str  # the reason in words (schedule.stop_description)
    best_step: int  # the step of the best validation
    history: list[dict] = field(default_factory=list)
    precision: str = "fp32"  # what this process trained in: fp32, bf16 or fp16

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
            "best_step": self.best_step,
            "stop_reason": self.stop_reason,
            "parameters": self.parameters,
            "precision": self.precision,
        }


def training_loss(network, output: str, x: torch.Tensor, y: torch.Tensor, hidden=None):
    """The mean cross-entropy of targets y given inputs x (B, T), and the state after x.
    `output` is the model's output layer ("adaptive": log p of each target only, the
    tail clusters on their rows alone)."""
    if output == "adaptive":
        log_p, hidden = network(x, hidden, targets=y)  # (B, T)
        return -log_p.mean(), hidden
    logits, hidden = network(x, hidden)  # (B, T, V)
    # autocast computes cross_entropy in float32 from bf16 logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), hidden


class Trainer:
    """One training run in a run directory, from step 0 or (after `load`) from a state.
    Starting a run the way `charrnn train` does, or resuming one: session.py."""

    def __init__(
        self,
        corpus: PreparedCorpus,
        model_config: ModelConfig,
        config: TrainConfig,
        run_dir: str | Path | RunDir,
        reporter: Reporter | None = None,
        runtime: Runtime | None = None,
        order=None,
    ):
        """`order` ranks the symbols of an adaptive output layer (session.output_order);
        `load` restores it with the weights."""
        if config.batch_size is None:  # nothing planned (session.start_run plans it)
            config = replace(config, batch_size=default_batch_size(None, timed=False))
        self.corpus, self.model_config, self.config = corpus, model_config, config
        self.runtime = runtime or Runtime()
        self.group = group = self.runtime.group
        self.rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.reporter = reporter or Reporter()
        rows = group.rows(config.batch_size)
        self.streams = BatchStreams(corpus.train, config.batch_size, config.seq_len, rows)
        if group.is_main:
            self.rundir.lock()  # held (from session.py, or taken here) until run() ends
            self.rundir.tidy()
        torch.manual_seed(config.seed)
        self.model = CharRNN(model_config, order).to(self.runtime.device)
        self.model_config = self.model.config  # resolved: what states and model files hold
        if group.rank > 0:
            torch.manual_seed(config.seed + group.rank)  # dropout masks of its own per rank
        self.network = self.runtime.wrap(self.model)
        # AdamW's decoupled weight decay, on layout.decayed_weights only: applied in
        # _step as AdamW would (w -= lr * decay * w before the update), which keeps one
        # parameter group, the state file's layout (checkpoint._check_optimizer).
        weights = dict(self.model.named_parameters())
        decayed = decayed_weights(self.model_config, config.weight_decay_on)
        self.decayed = [weights[name] for name in decayed]
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            betas=(0.9, 0.99),
            weight_decay=0.0,
            # One kernel over all parameters: the default (foreach) AdamW step took 3.5-6 ms
            # of a ~60 ms step for a 1x384 model with a 2,673-symbol adaptive head, fused 0.7.
            fused=self.runtime.device.type in ("cpu", "cuda"),
        )
        self.scaler = self.runtime.grad_scaler()
        # (N,) the validation text scored during training: all of it, or its first part
        # when it is much larger than a small training text
        self.val = corpus.val[: validation_chars(len(corpus.train), len(corpus.val))]
        # Validations per pass only for a text the model can learn by heart: a large
        # text's long run (Shakespeare for 10 minutes passes over it ~6 times) would
        # spend up to a quarter of its time validating 505k characters.
        small = is_small_text(model_config, len(corpus.train))
        self.schedule = EvalSchedule(config, len(self.val), len(corpus.train) if small else None)
        self.loop = LoopState()
        self.hidden = None  # carried recurrent state, torch layout
        self.history: list[dict] = []  # the validation records
        self.clock = Clock()
        self._last_save = 0.0  # loop.elapsed at the last saved state
        self.info = {
            "train_config": asdict(config),
            "corpus": corpus.meta.get("sources", [{}])[0].get("path"),
            "train_chars": len(corpus.train),
            "val_chars": len(self.val),
            "runtime": self.runtime.describe(),
        }

    @property
    def run_dir(self) -> Path:
        return self.rundir.path

    # -- states ---------------------------------------------------------------
    def save_state(self) -> Path:
        """Save the complete training state; under DDP all ranks call it, rank 0 writes."""
        loop = self.loop
        loop.position, loop.epoch = self.streams.position, self.streams.epoch
        meta = {
            "model_config": asdict(self.model_config),
            "train_config": asdict(self.config),
            "corpus_dir": str(self.corpus.directory.resolve()),
            "corpus_sha256": self.corpus.fingerprint,  # checked on resume
            "vocab": list(self.corpus.vocab.chars),
            "loop": asdict(loop),
            "runtime": self.runtime.describe(),  # for the record; a resume may change it
            "init_from": self.info.get("init_from"),  # the model the run started from
        }
        meta, tensors = checkpoint.capture(
            meta,
            self.model,
            self.optimizer,
            self.scaler,
            self.hidden,
            self.group,
            self.runtime.device,
        )
        self._last_save = loop.elapsed
        if self.group.is_main:
            self.rundir.save_state(loop.step, meta, tensors, self.config.keep)
        return self.rundir.state_path(loop.step)

    def load(self, state: checkpoint.TrainingState) -> None:
        """Continue from `state`: weights, optimizer, data position, RNGs, carried state."""
        self.hidden = checkpoint.restore(
            state,
            self.model,
            self.optimizer,
            self.scaler,
            self.group,
            self.runtime.device,
            self.group.rows(self.config.batch_size),
            self.config.seed,
        )
        for group in self.optimizer.param_groups:
            group["weight_decay"] = 0.0  # decay is _step's (a state may hold AdamW's own)
        self.loop = LoopState(**state.meta["loop"])
        self.streams.position, self.streams.epoch = self.loop.position, self.loop.epoch
        self._last_save = self.loop.elapsed

    def extend(self, peak_ratio: float) -> None:
        """Spend the config's budget from here on, as a new learning-rate segment
        (LoopState.start_segment); call after `load`."""
        self.loop.start_segment(peak_ratio)

    @property
    def stop_reason(self) -> str | None:
        """Why the run would stop before its next step: schedule.stop_reason, with the
        time as of the last saved state. None while there is training left to do."""
        return stop_reason(self.config, self.loop)

    # -- the loop ---------------------------------------------------------------
    def run(self, should_stop=lambda: False) -> TrainResult:
        """Train until the budget is spent or patience runs out, or `should_stop()` says
        so (then save and raise TrainingInterrupted). A run with nothing left to do
        (`stop_reason` set) returns its result without touching its files. However it
        ends, the run directory is closed and its lock released."""
        config, loop = self.config, self.loop
        if self.group.is_main:
            self.rundir.lock()  # held already, unless this Trainer ran before
        if self.stop_reason is not None and self.history:
            self.rundir.close()
            self.network = None  # as below
            return self.result(loop.elapsed, loop.eval_seconds, self.stop_reason)
        threads_before = torch.get_num_threads()
        if self.network is None:  # this Trainer ran before: wrap the model again
            self.network = self.runtime.wrap(self.model)
        try:
            self.reporter.on_start(
                {
                    **self.info,
                    "parameters": self.model.num_parameters(),
                    "model_config": asdict(self.model_config),
                    "resumed_at": loop.step,
                }
            )
            if loop.step == loop.segment_step:
                # A good state to roll back to from the first step, and for an
                # extension the state that holds its new budget.
                self.save_state()
            faults = 0
            self.model.train()
            threads = self._thread_tuner()
            self.clock = Clock(loop.elapsed)
            while True:
                # Rank 0's clock and stop request, so that all ranks take the same branches.
                loop.elapsed, stop = self.group.from_main(self.clock.now(), should_stop())
                reason = stop_reason(config, loop)
                if reason is not None:
                    break
                if stop:
                    self.save_state()
                    raise TrainingInterrupted(loop.step, self.run_dir)
                done = progress(config, loop)
                lr = learning_rate(config, loop, done)
                loss = threads.run(self._step, lr)
                if loss is None:
                    faults += 1
                    if faults >= FAULTS_BEFORE_ROLLBACK:
                        self._roll_back()
                        loop, faults = self.loop, 0
                    continue
                faults = 0
                self.reporter.on_step(loop.step, loss, lr, done)
                if self.schedule.due(loop):
                    self._evaluate()
                if loop.elapsed - self._last_save >= config.checkpoint_every:
                    self.save_state()
            (evaluated,) = self.group.from_main(
                bool(self.history) and self.history[-1]["step"] == loop.step
            )
            if not evaluated:
                self._evaluate()
            # The closing validation is part of what the run took (a 20 s budget whose
            # last validation took 7 s reports 27 s, 7 of them validating).
            train_seconds, eval_seconds = self.clock.now(), loop.eval_seconds
            self.save_state()
        finally:
            torch.set_num_threads(threads_before)
            self.rundir.close()
            # DistributedDataParallel holds the process group; it goes before the group
            # does (one left to the interpreter's exit aborted a process, 1 run in 53).
            self.network = None
        result = self.result(train_seconds, eval_seconds, reason)
        self.reporter.on_end(result)
        return result

    def result(self, train_seconds: float, eval_seconds: float, reason: str) -> TrainResult:
        loop = self.loop
        return TrainResult(
            out_dir=self.run_dir,
            steps=loop.step,
            chars_seen=loop.chars_seen,
            train_seconds=train_seconds,
            eval_seconds=eval_seconds,
            chars_per_s=loop.chars_seen / max(train_seconds - eval_seconds, 1e-9),
            best_val_nats=loop.best_nats,
            last_val_nats=self.history[-1]["val_loss"],
            best_model=self.rundir.best_model,
            last_model=self.rundir.last_model,
            parameters=self.model.num_parameters(),
            stop_reason=reason,
            stopped_by=stop_description(reason, self.config.patience),
            best_step=loop.best_step,
            history=self.history,
            precision=self.runtime.precision,
        )

    def _thread_tuner(self) -> ThreadTuner:
        """What runs each step with the fastest count of torch threads, up to the
        count set now (torchrun sets 1 per process: nothing to choose), on the CPU,
        for a softmax output (see THREAD_BLOCK_STEPS)."""
        tuned = self.runtime.device.type == "cpu" and self.model_config.output == "softmax"
        most = torch.get_num_threads()
        return ThreadTuner(
            candidate_counts(most) if tuned else [most],
            torch.set_num_threads,
            block_steps=THREAD_BLOCK_STEPS,
            blocks=THREAD_BLOCKS,
            run_steps=THREAD_RUN_STEPS,
            warmup_steps=1,
            max_run_steps=THREAD_MAX_RUN_STEPS,
        )

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
            output = self.model.config.output
            loss, hidden = training_loss(self.network, output, x, y, detach_state(self.hidden))
        self.optimizer.zero_grad(set_to_none=True)
        loop.step += 1
        loop.chars_seen += x.numel() * self.group.world_size
        # The mean over all ranks (equal shares: the mean of means is the global mean);
        # all ranks then agree on whether the step is finite, and all or none run backward.
        (value,) = self.group.sum(loss.item())
        value /= self.group.world_size
        finite, norm = math.isfinite(value), math.nan
        if finite:
            self.scaler.scale(loss).backward()  # DDP all-reduces (averages) gradients here
            self.scaler.unscale_(self.optimizer)
            # The norm before clipping, read once: the finiteness check below and the
            # metrics log's gradient facts (LoopState.add_gradient) share the one sync.
            norm = float(
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            )
            # With fp16 an overflowing gradient is routine: the scaler skips that update and
            # lowers its scale. Otherwise a non-finite gradient is a fault.
            finite = self.scaler.is_enabled() or math.isfinite(norm)
        if not finite:
            # Never let a non-finite value reach the weights or the carried state.
            self.optimizer.zero_grad(set_to_none=True)
            self.hidden = None
            self.reporter.on_fault(f"step {loop.step}: non-finite loss or gradient, skipped")
            return None
        if self.config.weight_decay and math.isfinite(norm):  # not an fp16 overflow (skipped)
            with torch.no_grad():
                torch._foreach_mul_(self.decayed, 1.0 - lr * self.config.weight_decay)
        self.scaler.step(self.optimizer)  # optimizer.step() unless fp16 overflowed
        self.scaler.update()
        self.hidden = float32_state(hidden)  # autocast may give bf16; states hold float32
        loop.loss_sum += value
        loop.loss_count += 1
        if math.isfinite(norm):  # not an fp16 overflow, which the scaler skipped
            loop.add_gradient(norm, self.config.grad_clip)
        if self.group.is_main:
            self.rundir.log_step({"step": loop.step, "loss": value, "lr": lr})
        return value

    def _roll_back(self) -> None:
        """Back to the newest saved state, with half the learning rate."""
        loop = self.loop
        if loop.rollbacks >= MAX_ROLLBACKS:
            raise CharRNNError(
                f"training diverged: non-finite losses persisted after {MAX_ROLLBACKS} "
                f"rollbacks; last good state is in {self.rundir.state_dir}; "
                "try a lower --lr"
            )
        scale, rollbacks = loop.lr_scale * 0.5, loop.rollbacks + 1
        self.load(self.rundir.latest_state())
        self.loop.lr_scale, self.loop.rollbacks = scale, rollbacks
        if self.group.is_main:
            self.rundir.cut_logs(self.loop.step, metrics=False)
        self.reporter.on_fault(
            f"rolled back to step {self.loop.step} with learning rate x{scale:g}"
        )
        self.clock = Clock(self.loop.elapsed)

    def _evaluate(self) -> None:
        """Score the validation text (`self.val`, in float32 whatever the training precision, so
        figures compare with `charrnn score`), record it and publish the model. Under DDP
        each rank scores a share of its segments and the sums are added up: the same
        figure as one process gets."""
        loop, group = self.loop, self.group
        # loop.elapsed was read before the step just taken; the record wants the time
        # now. Subtract only earlier validations.
        now = self.clock.now()
        training_seconds = max(now - loop.eval_seconds, 1e-9)
        began = time.perf_counter()
        share = score_ids(
            self.model, self.corpus.vocab, self.val, part=(group.rank, group.world_size)
        )
        nats, chars = group.sum(share.nats, share.chars)
        val_nats = nats / chars if chars else float("nan")
        # Rank 0 alone samples; the others wait for it in from_main below.
        sample = self._sample() if group.is_main and self.config.sample_chars else None
        self.model.train()
        # Rank 0's timing for all, since later decisions (EvalSchedule) depend on it.
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
            "precision": self.runtime.precision,  # may change on --resume
            **loop.gradient_record(),
        }
        if sample is not None:
            record["sample"] = sample
        loop.loss_sum, loop.loss_count = 0.0, 0
        if not math.isfinite(val_nats):
            raise CharRNNError(f"validation loss became {val_nats} at step {loop.step}; lower --lr")
        self.history.append(record)
        plateaus = loop.plateaus
        improved = loop.add_validation(val_nats, self.config)
        if loop.plateaus > plateaus:
            self._back_to_best()
        if not group.is_main:
            return
        info = {**self.info, "step": loop.step, "chars_seen": loop.chars_seen, "val_nats": val_nats}
        self.rundir.publish_model(
            self.model,
            self.corpus.vocab,
            info,
            step=loop.step,
            val_nats=val_nats,
            best=improved,
            keep=self.config.keep,
        )
        self.rundir.log_metrics(record)
        self.reporter.on_eval(record)

    def _back_to_best(self) -> None:
        """On a plateau (LoopState.add_validation), go on from the best model's weights
        with fresh AdamW moments and state, at the lowered learning rate: the steps
        since the best only learned the training text by heart. The weights come from
        RUN/best.safetensors, which a resumed run has as well."""
        self.group.barrier()  # rank 0 wrote the file at an earlier validation
        best = load_model(self.rundir.best_model)
        weights = {name: torch.from_numpy(value) for name, value in best.weights.items()}
        self.model.load_state_dict(weights)
        self.optimizer.state.clear()
        self.hidden = None
        loop = self.loop
        self.reporter.on_note(
            f"step {loop.step}: {self.config.patience} validations without improvement; "
            f"back to the best model (step {loop.best_step}) with the learning rate "
            f"x{PLATEAU_FACTOR**loop.plateaus:g}"
        )

    def _sample(self) -> str:
        """What the model writes now from the start of a text: sample_chars characters
        at SampleConfig's temperature, seeded with the run's seed. The numpy decoder
        draws from its own generator, so the training's random streams are untouched."""
        (text,) = sample_text(
            self.model,
            self.corpus.vocab,
            "",
            threads=1,
            length=self.config.sample_chars,
            temperature=SampleConfig.temperature,
            seed=self.config.seed,
        )
        return text


def train(
    corpus: PreparedCorpus,
    model_config: ModelConfig,
    config: TrainConfig,
    out_dir: str | Path,
    reporter: Reporter | None = None,
    should_stop=lambda: False,
    runtime: Runtime | None = None,
    order=None,
) -> TrainResult:
    """Train a fresh CharRNN on a prepared corpus with a complete ModelConfig (and an
    adaptive head's `order`); best and last models and states go to `out_dir`. No
    claim on the directory, no defaults decided: for that, session.start_run."""
    trainer = Trainer(corpus, model_config, config, out_dir, reporter, runtime, order)
    return trainer.run(should_stop)
