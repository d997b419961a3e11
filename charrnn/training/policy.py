"""The training defaults that depend on the text and the model: what a small text
is and what it gets (dropout, patience, learning-rate drops, the size warning), the
fine-tuning defaults, an extension's peak. Settings left unset (None) are decided
here. No torch.
"""

from __future__ import annotations

from dataclasses import replace

from ..config import SMALL_TEXT_LR_DROPS, SMALL_TEXT_PATIENCE, ModelConfig, TrainConfig
from ..model.layout import memorising_parameter_count


def size_advice(config: ModelConfig, train_chars: int) -> str | None:
    """char-rnn's rule of thumb: about as many parameters as training characters,
    counting the ones that can memorise (layout.memorising_parameter_count).

    Returns a warning when the model is far larger than the text (it will
    memorise rather than generalise), with a hidden size that fits; None otherwise.
    """
    params = memorising_parameter_count(config)
    if params <= 10 * train_chars:
        return None
    fitting = [
        h
        for h in range(32, config.hidden, 32)
        if memorising_parameter_count(replace(config, hidden=h)) <= train_chars
    ]
    advice = f"try --hidden {fitting[-1]}, or" if fitting else "even --hidden 32 is larger;"
    return (
        f"the model has {params:,} recurrent parameters for {train_chars:,} training "
        f"characters; it will memorise the text rather than learn it: {advice} give it "
        f"about {params:,} characters of text (rule of thumb: parameters ~ characters)"
    )


# Dropout for a text with fewer than SMALL_TEXT_CHARS_PER_PARAMETER characters per
# recurrent parameter (char-rnn's advice for small data, counted on the weights
# that can memorise). Measured, 90 s each: the 300 Tang poems (26,619 training
# characters, 691k recurrent parameters): 4.9443 nats/char without dropout,
# 4.8921 with 0.3, 4.8442 with 0.5; the first 1M characters of manpages-zh
# (1.45 characters per recurrent parameter): 3.8061 without, 3.7414 with 0.5.
SMALL_TEXT_DROPOUT = 0.5
SMALL_TEXT_CHARS_PER_PARAMETER = 2


def is_small_text(config: ModelConfig, train_chars: int) -> bool:
    """Whether a text is small for the model: fewer than SMALL_TEXT_CHARS_PER_PARAMETER
    characters per recurrent parameter (layout.memorising_parameter_count)."""
    return train_chars < SMALL_TEXT_CHARS_PER_PARAMETER * memorising_parameter_count(config)


# A long run, when the size is chosen from the budget (sizing.choose_size), which
# plans the characters the run will read. As the text repeats, a little dropout:
# REPEATED_TEXT_DROPOUT once the plan reads it REPEATED_TEXT_PASSES times or more.
# And as the loss falls, the useful batch grows (the gradient noise scale of
# McCandlish et al. 2018): LONG_RUN_BATCH_SIZE once a timed run plans LONG_RUN_CHARS
# characters or more (a run bounded by --max-steps keeps its steps' size). Measured
# (benchmarks/budget.py --grid, AMD EPYC Zen 4, bf16, Shakespeare, 600 s, 1x640,
# about 11M characters read: 2.4 passes), val nats/char: batch 16 without dropout
# 1.3972, with dropout 0.1 1.3891, batch 32 without 1.3820, both 1.3727 (one run
# each; one run's noise is about 0.015); in 90 s of 1x384 (about 2M characters) batch
# 16 beat 32 by 0.07 (docs/defaults.md). LONG_RUN_CHARS lies between the two;
# nothing between them was measured.
REPEATED_TEXT_PASSES = 2.0
REPEATED_TEXT_DROPOUT = 0.1
LONG_RUN_CHARS = 10e6
BATCH_SIZE = 16  # --batch-size when none is given ...
LONG_RUN_BATCH_SIZE = 32  # ... and for a long run


def default_dropout(
    config: ModelConfig, train_chars: int, planned_chars: float | None = None
) -> float:
    """The dropout `charrnn train` uses when none is given: SMALL_TEXT_DROPOUT for a
    small text (is_small_text), REPEATED_TEXT_DROPOUT when the run plans to read the
    text REPEATED_TEXT_PASSES times or more (`planned_chars`: None when not planned),
    else 0."""
    if is_small_text(config, train_chars):
        return SMALL_TEXT_DROPOUT
    if planned_chars and planned_chars >= REPEATED_TEXT_PASSES * train_chars:
        return REPEATED_TEXT_DROPOUT
    return 0.0


def default_batch_size(planned_chars: float | None, timed: bool) -> int:
    """The batch size `charrnn train` uses when none is given: LONG_RUN_BATCH_SIZE for a
    run timed by --max-time that plans LONG_RUN_CHARS characters or more, else
    BATCH_SIZE."""
    if timed and planned_chars and planned_chars >= LONG_RUN_CHARS:
        return LONG_RUN_BATCH_SIZE
    return BATCH_SIZE


# Early stopping for a small text: stop after config.SMALL_TEXT_PATIENCE (3; declared
# there, where --patience's help shows it) validations in a row without a better
# validation loss. A model that can learn its text by heart passes its best early and
# only gets worse after it. Measured (benchmarks/patience.py, Zen 3, 180 s on the
# first 30,000 characters of psalms): without early stopping the best validation was
# at step 305 of 2,808 (1.4936 nats/char); patience 3 stopped at 68.7 s, step 986,
# best 1.4651 (step 356). Other texts train to their budget unless --patience is given.
def default_patience(config: ModelConfig, train_chars: int) -> int:
    """The patience `charrnn train` uses when none is given: SMALL_TEXT_PATIENCE for a
    small text (is_small_text), else 0 (never stop early)."""
    return SMALL_TEXT_PATIENCE if is_small_text(config, train_chars) else 0


# On a small text, when patience first runs out, training goes back to the best
# model and on at a tenth of the learning rate (schedule.LoopState.add_validation)
# before patience stops it: config.SMALL_TEXT_LR_DROPS (1) times. Measured
# (benchmarks/small_texts.py, 60 s, AMD EPYC Zen 4, 7 small texts, best validation
# nats/char): one drop against none: better on 5 of 7 texts by 0.006-0.021 (psalms
# 30k 1.4620 -> 1.4460, Python source 1.5787 -> 1.5576), worse on 2 by
# 0.008-0.009; a second drop changed nothing beyond noise.
def default_lr_drops(config: ModelConfig, train_chars: int) -> int:
    """The lr_drops `charrnn train` uses when none is given: SMALL_TEXT_LR_DROPS for a
    small text (is_small_text), else 0."""
    return SMALL_TEXT_LR_DROPS if is_small_text(config, train_chars) else 0


# Extending a run (`charrnn train --resume RUN --max-time S`) starts a new
# learning-rate segment: warm-up, then a cosine from lr * EXTENSION_PEAK_RATIO
# down to lr * final_lr_ratio over the new budget: a warm restart. Measured
# (benchmarks/extend.py, Zen 3, a 60 s run extended by 60 s; best validation
# nats/char with peaks 1 / 0.3 / 0.05, and one straight 120 s run): psalms 1.1008
# / 1.1290 / 1.1617, straight 1.0907; Shakespeare 1.5479 / 1.5663 / 1.5852,
# straight 1.5455. The full peak was best on both, within 0.011 of the straight run.
EXTENSION_PEAK_RATIO = 1.0

# Fine-tuning (`--init-from MODEL`): a fresh AdamW and schedule start from trained
# weights, so the defaults differ from a run from scratch. These apply where the user
# gave no value. An outside trial (60 s, psalms, the bundled model) found AdamW 2e-3
# with dropout 0.2 fine-tuned beating 6e-3 / 0.5 from scratch on small texts; the
# values are to be settled with benchmarks/finetune.py.
FINETUNE_LR = 2e-3  # a third of TrainConfig.lr: large steps would undo what the model knows
FINETUNE_WARMUP_STEPS = 20  # as from scratch: AdamW's moments start at zero either way
FINETUNE_DROPOUT = 0.2  # the architecture is the model's; this regularises it on a small text
# AdamW's decay pulls weights towards zero, not towards the model's: fine-tuning was
# measured without it (benchmarks/finetune.py), and keeps none.
FINETUNE_WEIGHT_DECAY = 0.0
FINETUNE_TRAIN_DEFAULTS = {
    "lr": FINETUNE_LR,
    "warmup_steps": FINETUNE_WARMUP_STEPS,
    "weight_decay": FINETUNE_WEIGHT_DECAY,
}


# The model's size when none is given (sizing.choose_size): one layer, the widest of
# WIDTHS (narrowest first) that sees at least CHARS_PER_PARAMETER training characters
# per recurrent parameter within the budget, at this machine's measured speed. Fitted on the
# size grid in BENCHMARKS.md ("Model size and the budget").
WIDTHS = (256, 384, 512, 640, 768, 1024, 1280)
CHARS_PER_PARAMETER = 4.0


def train_config(settings: dict, finetune: bool = False) -> TrainConfig:
    """A TrainConfig from `settings` (field -> value; missing or None: the default), with
    FINETUNE_TRAIN_DEFAULTS in place of the defaults when `finetune` (--init-from).
    batch_size, patience and lr_drops left None are decided when the run starts
    (default_batch_size, default_patience, default_lr_drops), from the text and the
    budget."""
    given = {name: value for name, value in settings.items() if value is not None}
    return TrainConfig(**{**(FINETUNE_TRAIN_DEFAULTS if finetune else {}), **given})


def fine_tune_dropout(given: float | None) -> float:
    """The dropout of a run started from a trained model: `given`, else FINETUNE_DROPOUT."""
    return FINETUNE_DROPOUT if given is None else given


def decided_defaults() -> dict[str, str]:
    """The settings of `charrnn train` whose default is decided here, each with its
    rule in words (for --help and the reference)."""
    finetune = {
        name: (
            f"{getattr(TrainConfig, name)}"
            + ("" if value == getattr(TrainConfig, name) else f"; {value} with --init-from")
        )
        for name, value in FINETUNE_TRAIN_DEFAULTS.items()
    }
    return {
        "hidden": (
            f"the widest of {', '.join(map(str, WIDTHS))} that sees at least "
            f"{CHARS_PER_PARAMETER:g} training characters per recurrent parameter in --max-time at "
            "this machine's speed (a short probe), or in --max-steps; at most "
            f"{ModelConfig.hidden} when the text is small for a wider one; the model's "
            "with --init-from"
        ),
        "layers": "1 when the size is decided; the model's with --init-from",
        "dropout": (
            f"0, or {SMALL_TEXT_DROPOUT} when the training text has fewer than "
            f"{SMALL_TEXT_CHARS_PER_PARAMETER} characters per recurrent parameter, or "
            f"{REPEATED_TEXT_DROPOUT} when the size is decided and the run plans to read "
            f"the text {REPEATED_TEXT_PASSES:g} times or more; {FINETUNE_DROPOUT} with "
            "--init-from"
        ),
        "batch_size": (
            f"{BATCH_SIZE}, or {LONG_RUN_BATCH_SIZE} when the size is decided and the run, "
            f"timed by --max-time, plans {LONG_RUN_CHARS / 1e6:g}M characters or more"
        ),
        **finetune,
    }
