"""Training: truncated BPTT over contiguous batch streams, AdamW, time-aware LR schedule.

The training text is cut into `batch_size` contiguous streams, read side by
side `seq_len` characters at a time; the hidden state is carried from one
batch to the next (detached), so the model learns dependencies longer than a
batch. No printing here: progress goes to a `Reporter` the caller provides.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .config import ModelConfig, TrainConfig
from .corpus import PreparedCorpus
from .errors import CharRNNError
from .model import CharRNN, detach_state
from .modelfile import EXTENSION, save_model
from .score import score_ids

AUTO_EVAL_SHARE = 0.05  # most of the budget one automatic validation may take


class Reporter:
    """Receives training progress. The default does nothing; the CLI draws a bar."""

    def on_start(self, info: dict) -> None: ...

    def on_step(self, step: int, loss: float, lr: float, progress: float) -> None: ...

    def on_eval(self, record: dict) -> None: ...

    def on_end(self, result: TrainResult) -> None: ...


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
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int):
        self.length = (len(ids) - 1) // batch_size  # characters per stream
        if self.length < seq_len:
            need = batch_size * seq_len + 1
            raise CharRNNError(
                f"training text too short: {len(ids)} characters; batch size {batch_size} "
                f"x sequence length {seq_len} needs at least {need}"
            )
        span = self.length * batch_size
        self.inputs = ids[:span].reshape(batch_size, self.length)  # views into the memmap
        self.targets = ids[1 : span + 1].reshape(batch_size, self.length)
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


def train(
    corpus: PreparedCorpus,
    model_config: ModelConfig,
    config: TrainConfig,
    out_dir: str | Path,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train a CharRNN on `corpus`; write best and last model files into `out_dir`."""
    reporter = reporter or Reporter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = CharRNN(model_config)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.99), weight_decay=config.weight_decay
    )
    streams = BatchStreams(corpus.train, config.batch_size, config.seq_len)
    best_path, last_path = out_dir / f"best{EXTENSION}", out_dir / f"last{EXTENSION}"
    metrics_path = out_dir / "metrics.jsonl"
    base_info = {
        "train_config": asdict(config),
        "corpus": corpus.meta.get("sources", [{}])[0].get("path"),
        "train_chars": len(corpus.train),
        "val_chars": len(corpus.val),
    }
    reporter.on_start(
        {**base_info, "parameters": model.num_parameters(), "model_config": asdict(model_config)}
    )

    history: list[dict] = []
    best_nats = math.inf
    step = chars_seen = 0
    state = None
    eval_seconds = last_eval_seconds = 0.0
    evals_done = 0
    loss_sum = loss_count = 0
    start = time.perf_counter()

    def auto_eval_due() -> bool:
        """Validate at 1/4, 2/4 and 3/4 of the budget, unless one validation would
        take more than AUTO_EVAL_SHARE of it (then only at the end).

        The cost is the last validation's time, or before the first, an estimate
        from training throughput (a forward pass is about a third of a step).
        """
        nonlocal evals_done
        if evals_done >= 3:
            return False
        elapsed = time.perf_counter() - start
        if config.progress(elapsed, step) < (evals_done + 1) / 4:
            return False
        evals_done += 1
        budget = (
            config.max_time if config.max_time > 0 else elapsed / config.progress(elapsed, step)
        )
        cost = last_eval_seconds or len(corpus.val) / max(3 * chars_seen / elapsed, 1.0)
        return cost <= AUTO_EVAL_SHARE * budget

    def evaluate() -> None:
        nonlocal best_nats, eval_seconds, last_eval_seconds, loss_sum, loss_count
        began = time.perf_counter()
        val_nats = score_ids(model, corpus.vocab, corpus.val).nats_per_char
        model.train()
        last_eval_seconds = time.perf_counter() - began
        eval_seconds += last_eval_seconds
        elapsed = time.perf_counter() - start
        record = {
            "step": step,
            "time": round(elapsed, 2),
            "train_loss": loss_sum / loss_count if loss_count else None,
            "val_loss": val_nats,
            "val_bpc": val_nats / math.log(2),
            "lr": optimizer.param_groups[0]["lr"],
            "chars_per_s": chars_seen / max(elapsed - eval_seconds, 1e-9),
            "epoch": streams.epoch,
        }
        loss_sum = loss_count = 0
        if not math.isfinite(val_nats):
            raise CharRNNError(f"validation loss became {val_nats} at step {step}; lower --lr")
        history.append(record)
        info = {**base_info, "step": step, "chars_seen": chars_seen, "val_nats": val_nats}
        save_model(last_path, model, corpus.vocab, info)
        if val_nats < best_nats:
            best_nats = val_nats
            save_model(best_path, model, corpus.vocab, info)
        with metrics_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        reporter.on_eval(record)

    model.train()
    while True:
        elapsed = time.perf_counter() - start
        progress = config.progress(elapsed, step)
        if progress >= 1.0:
            break
        lr = config.learning_rate(step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y, new_epoch = streams.next()
        if new_epoch:
            state = None
        logits, state = model(x, detach_state(state))  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        chars_seen += x.numel()
        loss_value = loss.item()
        loss_sum += loss_value
        loss_count += 1
        reporter.on_step(step, loss_value, lr, progress)

        if config.eval_every > 0:
            due = step % config.eval_every == 0
        else:
            due = auto_eval_due()
        if due:
            evaluate()

    train_seconds = time.perf_counter() - start
    loop_eval_seconds = eval_seconds
    if not history or history[-1]["step"] != step:
        evaluate()
    result = TrainResult(
        out_dir=out_dir,
        steps=step,
        chars_seen=chars_seen,
        train_seconds=train_seconds,
        eval_seconds=loop_eval_seconds,
        chars_per_s=chars_seen / max(train_seconds - loop_eval_seconds, 1e-9),
        best_val_nats=best_nats,
        last_val_nats=history[-1]["val_loss"],
        best_model=best_path,
        last_model=last_path,
        parameters=model.num_parameters(),
        history=history,
    )
    reporter.on_end(result)
    return result
