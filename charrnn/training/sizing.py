"""The model's size when none is given: from the budget, this machine's speed and the text.

A model trained for a short time learns most when it is small enough to see many
characters per parameter, and for a long time when it is wide enough to use them
(the compute-optimal trade of the scaling-law papers). The rule, measured here
(BENCHMARKS.md, "Model size and the budget"): the widest candidate that still sees at
least CHARS_PER_PARAMETER training characters per parameter within the budget. The
characters a width would see are its measured speed on this machine and precision (a
short probe of training steps) times the time budget, or, for a run bounded only by
steps, the steps' characters.

The text bounds it from above: a width wider than the default is a candidate only
while the text is not small for it (policy.is_small_text), so a small text keeps at
most the default width and the small-text policy measured for it. Explicit --hidden
or --layers always win. The rule's constants are policy.WIDTHS and
policy.CHARS_PER_PARAMETER.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from ..config import ModelConfig, TrainConfig
from ..model.layout import parameter_count
from ..model.network import CharRNN
from .policy import CHARS_PER_PARAMETER, WIDTHS, is_small_text
from .runtime import Runtime
from .trainer import training_loss

PROBE_STEPS = 3  # timed training steps per width, after one untimed


@dataclass(frozen=True)
class SizeChoice:
    config: ModelConfig
    chars_per_s: float | None  # the probe's speed of the chosen width (None: not probed)
    budget_chars: float  # characters it would see in the budget
    note: str


def probe_speed(config: ModelConfig, train: TrainConfig, runtime: Runtime) -> float:
    """Training characters per second of `config` here: PROBE_STEPS steps on random ids
    at the run's batch and sequence length, forward, backward and AdamW, in the run's
    precision (after one untimed step)."""
    device = runtime.device
    model = CharRNN(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), fused=device.type in ("cpu", "cuda"))
    ids = torch.randint(config.vocab_size, (train.batch_size, train.seq_len + 1), device=device)
    x, y = ids[:, :-1], ids[:, 1:]  # (B, T) each

    def step() -> None:
        with runtime.autocast():
            loss, _ = training_loss(model, model.config.output, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # waits for the device

    step()
    began = time.perf_counter()
    for _ in range(PROBE_STEPS):
        step()
    return PROBE_STEPS * x.numel() / (time.perf_counter() - began)


def choose_size(
    base: ModelConfig, train: TrainConfig, runtime: Runtime, train_chars: int
) -> SizeChoice:
    """The width for a run that gave no size (see the module's docstring); `base` holds
    the other model settings, its output layer resolved. Under several processes, rank
    0's choice."""
    steps_only = not train.max_time
    chosen: SizeChoice | None = None
    capped = False
    for width in WIDTHS:
        config = replace(base, hidden=width, layers=1)
        if width > base.hidden and is_small_text(config, train_chars):
            capped = True
            break
        if steps_only:
            speed, budget = None, float(train.max_steps * train.batch_size * train.seq_len)
        else:
            speed = probe_speed(config, train, runtime)
            budget = speed * train.max_time
        params = parameter_count(config)
        if chosen is not None and budget < CHARS_PER_PARAMETER * params:
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
        else f"the widest that sees >= {CHARS_PER_PARAMETER:g} characters per parameter"
    )
    return (
        f"size {config.layers}x{config.hidden} ({parameter_count(config):,} parameters): "
        f"{why}, {within} (--hidden/--layers set it)"
    )
