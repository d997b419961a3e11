"""Settings, one frozen dataclass per concern; the single source of truth for defaults.

The CLI reads its option defaults from here, and every model file stores the
ModelConfig and TrainConfig it was made with. No torch here, so `--help` is fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from .errors import CharRNNError


@dataclass(frozen=True)
class DataConfig:
    """How a corpus is split into training and validation text."""

    val_fraction: float = 0.1  # the last ~10%, cut at a line boundary
    val_file: str | None = None  # explicit validation text instead of a split
    encoding: str = "utf-8"
    errors: str = "strict"  # or "replace": undecodable bytes become U+FFFD
    keep_newlines: bool = False  # False: CRLF and lone CR become LF
    normalize: bool = True  # NFC: a decomposed and a composed "é" are one character

    @property
    def normalization(self) -> str | None:
        return "NFC" if self.normalize else None

    def read_options(self) -> dict:
        """Keyword arguments for textfile.iter_text_chunks."""
        return {
            "encoding": self.encoding,
            "errors": self.errors,
            "keep_newlines": self.keep_newlines,
            "normalization": self.normalization,
        }


CELLS = ("rnn", "lstm", "gru")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a CharRNN. The defaults are the measured best for a few CPU minutes."""

    vocab_size: int
    cell: str = "lstm"
    layers: int = 1
    hidden: int = 384
    embedding: int = 64  # small: a character needs few dimensions, and it cuts FLOPs
    dropout: float = 0.0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise CharRNNError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        for name in ("vocab_size", "layers", "hidden", "embedding"):
            if getattr(self, name) < 1:
                raise CharRNNError(f"{name} must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise CharRNNError("dropout must be in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)

    def parameter_count(self) -> int:
        """Number of weights of the CharRNN this config builds (no torch needed)."""
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[self.cell]
        hidden, embedding, vocab = self.hidden, self.embedding, self.vocab_size
        recurrent = gates * hidden * (embedding + hidden + 2)  # layer 0: W_ih, W_hh, 2 biases
        recurrent += (self.layers - 1) * gates * hidden * (2 * hidden + 2)
        return vocab * embedding + recurrent + hidden * vocab + vocab


def size_advice(config: ModelConfig, train_chars: int) -> str | None:
    """char-rnn's rule of thumb: about as many parameters as training characters.

    Returns a warning when the model is far larger than the text (it will
    memorise rather than generalise), with a hidden size that fits; None otherwise.
    """
    params = config.parameter_count()
    if params <= 10 * train_chars:
        return None
    fitting = [
        h
        for h in range(32, config.hidden, 32)
        if replace(config, hidden=h).parameter_count() <= train_chars
    ]
    advice = f"try --hidden {fitting[-1]}, or" if fitting else "even --hidden 32 is larger;"
    return (
        f"the model has {params:,} parameters for {train_chars:,} training characters; "
        f"it will memorise the text rather than learn it: {advice} give it about "
        f"{params:,} characters of text (rule of thumb: parameters ~ characters)"
    )


# Dropout when the model has more parameters than the training text has
# characters (char-rnn's advice for small data). Measured on the 300 Tang poems
# (26,619 training characters, 1.8M parameters, 90 s): 4.9443 nats/char
# without dropout, 4.8921 with 0.3, 4.8442 with 0.5.
SMALL_TEXT_DROPOUT = 0.5


def default_dropout(config: ModelConfig, train_chars: int) -> float:
    """The dropout `charrnn train` uses when none is given: 0 for a text with at
    least as many characters as the model has parameters, else SMALL_TEXT_DROPOUT."""
    return SMALL_TEXT_DROPOUT if config.parameter_count() > train_chars else 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. The defaults are the measured best for a few CPU minutes."""

    seq_len: int = 64
    batch_size: int = 16
    lr: float = 6e-3
    final_lr_ratio: float = 0.05  # the cosine schedule ends at lr * this
    warmup_steps: int = 20
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # global-norm clipping threshold
    max_time: float = 300.0  # seconds of training (0 = no limit); the schedule follows it
    max_steps: int = 0  # 0 = no limit
    eval_every: int = 0  # steps between validations; 0 = automatic (time-based)
    seed: int = 0
    checkpoint_every: float = 60.0  # seconds between training-state saves
    keep: int = 2  # training states kept in RUN/state (the newest ones)

    def __post_init__(self):
        if self.max_time <= 0 and self.max_steps <= 0:
            raise CharRNNError("set a budget: --max-time SECONDS or --max-steps N")
        for name in ("seq_len", "batch_size"):
            if getattr(self, name) < 1:
                raise CharRNNError(f"{name.replace('_', '-')} must be at least 1")
        if self.lr <= 0:
            raise CharRNNError("the learning rate must be positive")

    def progress(self, elapsed: float, step: int) -> float:
        """Fraction of the budget used: by time or by steps, whichever is further."""
        by_time = elapsed / self.max_time if self.max_time > 0 else 0.0
        by_steps = step / self.max_steps if self.max_steps > 0 else 0.0
        return min(1.0, max(by_time, by_steps))

    def learning_rate(self, step: int, progress: float) -> float:
        """Linear warm-up, then cosine decay over the budget (time or steps)."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr * warm * (self.final_lr_ratio + (1.0 - self.final_lr_ratio) * cosine)


DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a run computes. Not part of the run's identity: a resumed run
    may move to another device or precision (it is the same run, not a bit-exact one)."""

    device: str = "auto"  # auto: CUDA when present, else the CPU
    precision: str = "fp32"  # bf16 / fp16: autocast on CUDA (fp16 with a gradient scaler)

    def __post_init__(self):
        if self.device not in DEVICES:
            raise CharRNNError(
                f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}"
            )
        if self.precision not in PRECISIONS:
            raise CharRNNError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
