"""The model's size when none is given: from the budget, this machine's speed and the text.

A model trained for a short time learns most when it is small enough to see many
characters per parameter, and for a long time when it is wide enough to use them
(the compute-optimal trade of the scaling-law papers). The rule, measured here
(BENCHMARKS.md, "Model size and the budget"): the widest candidate that still sees at
least CHARS_PER_PARAMETER training characters per recurrent parameter within the
budget. Like the scaling-law papers' non-embedding parameters, the count leaves out
the embedding and the output layer: one row per symbol, they grow with the alphabet
(2,673 symbols in Chinese manual pages) without the model learning more per
character, and counting them would give a large alphabet a narrower model. The
characters a width would see are its measured speed on this machine and precision (a
short probe of training steps) times the time budget, or, for a run bounded only by
steps, the steps' characters.

The text bounds it from above: a width wider than the default is a candidate only
while the text is not small for it (policy.is_small_text), so a small text keeps at
most the default width and the small-text policy measured for it. Explicit --hidden
or --layers always win. The rule's constants are policy.WIDTHS and
policy.CHARS_PER_PARAMETER. The characters planned (SizeChoice.budget_chars) also
decide a long run's dropout and batch (policy.default_dropout, default_batch_size).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..config import ModelConfig, TrainConfig
from ..model.layout import memorising_parameter_count, parameter_count
from ..model.network import CharRNN
from .policy import BATCH_SIZE, CHARS_PER_PARAMETER, WIDTHS, is_small_text
from .runtime import Runtime
from .trainer import training_loss

PROBE_WARMUP_STEPS = 2  # untimed: the first steps of a shape pay for kernel set-up
PROBE_STEPS = 3  # timed training steps per width, at least ...
PROBE_SECONDS = 0.5  # ... and at least this long, so that a fast step is timed often


@dataclass(frozen=True)
class SizeChoice:
    config: ModelConfig
    chars_per_s: float | None  # the probe's speed of the chosen width (None: not probed)
    budget_chars: float  # characters it would see in the budget
    note: str


def probe_batch(train: TrainConfig) -> int:
    """The batch size the run's speed and steps are planned with: the run's, or the
    default one when the plan decides it (policy.default_batch_size)."""
    return train.batch_size or BATCH_SIZE


def probe_speed(
    config: ModelConfig,
    train: TrainConfig,
    runtime: Runtime,
    text: np.ndarray,
    order: list[int] | None = None,
) -> float:
    """Training characters per second of `config` here: training steps on a batch of
    the training text (`text`, ids; an adaptive output layer's cost depends on which
    symbols it meets) at the run's batch and sequence length, forward, backward and
    AdamW, in the run's precision; PROBE_STEPS and PROBE_SECONDS of them timed, after
    PROBE_WARMUP_STEPS. `order` is the adaptive layer's (session.output_order)."""
    device = runtime.device
    model = CharRNN(config, order).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), fused=device.type in ("cpu", "cuda"))
    window = train.seq_len + 1
    starts = np.linspace(0, max(len(text) - window, 0), probe_batch(train)).astype(np.int64)
    positions = (starts[:, None] + np.arange(window)) % len(text)  # (B, T+1)
    ids = torch.as_tensor(np.asarray(text[positions], dtype=np.int64), device=device)
    x, y = ids[:, :-1], ids[:, 1:]  # (B, T) each

    def step() -> None:
        with runtime.autocast():
            loss, _ = training_loss(model, model.config.output, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # waits for the device

    for _ in range(PROBE_WARMUP_STEPS):
        step()
    began = time.perf_counter()
    steps = 0
    while steps < PROBE_STEPS or time.perf_counter() - began < PROBE_SECONDS:
        step()
        steps += 1
    return steps * x.numel() / (time.perf_counter() - began)


def choose_size(
    base: ModelConfig,
    train: TrainConfig,
    runtime: Runtime,
    text: np.ndarray,
    order: list[int] | None = None,
) -> SizeChoice:
    """The width for a run that gave no size (see the module's docstring) on the training
    text `text` (ids); `base` holds the other model settings, its output layer resolved,
    and `order` is an adaptive output layer's. Under several processes, rank 0's
    choice."""
    steps_only = not train.max_time
    train_chars = len(text)
    chosen: SizeChoice | None = None
    capped = False
    for width in WIDTHS:
        config = replace(base, hidden=width, layers=1)
        if width > base.hidden and is_small_text(config, train_chars):
            capped = True
            break
        if steps_only:
            speed = None
            budget = float(train.max_steps * probe_batch(train) * train.seq_len)
        else:
            speed = probe_speed(config, train, runtime, text, order)
            budget = speed * train.max_time
        if chosen is not None and budget < CHARS_PER_PARAMETER * memorising_parameter_count(config):
            break
        chosen = SizeChoice(config, speed, budget, "")
    (width,) = runtime.group.from_main(chosen.config.hidden)
    config = replace(base, hidden=int(width), layers=1)
    chosen = replace(chosen, config=config)
    return replace(chosen, note=_note(chosen, train, steps_only, capped))


def _note(choice: SizeChoice, train: TrainConfig, steps_only: bool, capped: bool) -> str:
    config = choice.config
    chars = f"{choice.budget_chars / 1e6:.1f}M characters"
    if steps_only:
        within = f"{chars} in {train.max_steps:,} steps"
    else:
        within = f"{chars} in {train.max_time:g} s at {choice.chars_per_s:,.0f} chars/s here"
    why = (
        "the widest the text is not small for"
        if capped
        else f"the widest that sees >= {CHARS_PER_PARAMETER:g} characters per recurrent parameter"
    )
    return (
        f"size {config.layers}x{config.hidden} ({parameter_count(config):,} parameters, "
        f"{memorising_parameter_count(config):,} recurrent): "
        f"{why}, {within} (--hidden/--layers set it)"
    )
