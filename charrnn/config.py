"""Settings, one frozen dataclass per concern; the single source of truth for defaults.

Each field declares its default, its command-line help and its bounds once
(`setting`); the CLI generates its options from them (cli/options.py), and
every model file stores the ModelConfig and TrainConfig it was made with.
No torch here, so `--help` is fast.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field

from .errors import CharRNNError


def setting(
    default,
    help: str,
    *,
    alias: str | None = None,
    short: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
    choices: tuple[str, ...] | None = None,
    kind: type | None = None,
    flag: bool = False,
    negatable: bool = False,
    path: bool = False,
    cli: bool = True,
    default_text: str | None = None,
):
    """A dataclass field with what the command line needs to offer it as an option.

    The option is --field-name: one name in Python, on the command line and in the
    docs. `alias` is an earlier option name, still accepted but not shown; `kind` the value
    type (default: the default's type), `flag` makes a bool an on-switch and
    `negatable` a --name/--no-name pair, `path` a file name; `cli=False` keeps the field off the
    command line; `default_text` is shown instead of the default in --help.
    """
    meta = {
        "help": help,
        "alias": alias,
        "short": short,
        "minimum": minimum,
        "maximum": maximum,
        "min_open": min_open,
        "max_open": max_open,
        "choices": choices,
        "kind": kind,
        "flag": flag,
        "negatable": negatable,
        "path": path,
        "cli": cli,
        "default_text": default_text,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    """How a corpus is split into training and validation text."""

    val_fraction: float = setting(
        0.1,
        "Fraction at the end of the corpus used for validation, cut at a line.",
        minimum=0,
        maximum=1,
        min_open=True,
        max_open=True,
    )
    val_file: str | None = setting(
        None,
        "Validation text file (default: split off the end of the corpus).",
        alias="--val",
        kind=str,
        path=True,
    )
    encoding: str = setting("utf-8", "Text encoding of the corpus files.")
    errors: str = setting(
        "strict",
        "Undecodable bytes: stop with an error, or replace them with U+FFFD.",
        choices=("strict", "replace"),
    )
    keep_newlines: bool = setting(
        False, "Keep CRLF and lone CR as they are (by default they become LF).", flag=True
    )
    normalize: bool = setting(
        True,
        "Put text in Unicode NFC form (here, and again when sampling and scoring): "
        'a decomposed and a composed "é" are one character.',
        negatable=True,
    )


CELLS = ("rnn", "lstm", "gru")
OUTPUTS = ("auto", "softmax", "adaptive")
DECAY_SCOPES = ("recurrent", "all")

# --output auto picks the adaptive softmax from this alphabet size, on a text long
# enough for it (model/layout.py: resolve_output, which also says why).
ADAPTIVE_MIN_VOCAB = 1000

# Upper bounds on a model's shape. Real models stay far below them; they exist so that a
# damaged or hostile model file (which can say anything) is refused before its config
# is used at all: a config is only compared with the file's tensors once it is within
# them (model/modelfile.py), and the work that comparison takes grows with these.
MAX_VOCAB = 0x110000  # every Unicode code point
MAX_HIDDEN = 1 << 16  # one LSTM layer this wide is 64 GiB of weights (char-rnn used <= 1,024)
MAX_EMBEDDING = 1 << 16
MAX_LAYERS = 256
# Tail clusters grow CLUSTER_GROWTH-fold (model/layout.py), so even MAX_VOCAB symbols
# need fewer than 16.
MAX_CLUSTERS = 32


def _shown(value) -> str:
    """A value in an error line, cut short: it may come from a damaged file."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a CharRNN. The defaults are the measured best for a few CPU minutes.

    A model holds a resolved config (model/layout.py: resolve_output): output
    "softmax", or "adaptive" with its cutoffs; "auto" is decided when a run starts,
    from the corpus."""

    vocab_size: int = setting(0, "Characters in the vocabulary.", cli=False)
    cell: str = setting("lstm", "Recurrent cell.", choices=CELLS)
    layers: int = setting(1, "Stacked recurrent layers.", minimum=1, maximum=MAX_LAYERS)
    hidden: int = setting(384, "Hidden units per layer.", minimum=1, maximum=MAX_HIDDEN)
    # small: a character needs few dimensions, and it cuts FLOPs
    embedding: int = setting(64, "Character embedding size.", minimum=1, maximum=MAX_EMBEDDING)
    dropout: float = setting(
        0.0,
        "Dropout between layers and before the output layer.",
        minimum=0,
        maximum=1,
        max_open=True,
    )
    output: str = setting(
        "auto",
        "Output layer: a softmax over the whole alphabet, or an adaptive softmax "
        "(frequent characters in a head, rare ones in clusters) whose cost hardly grows "
        f"with the alphabet; auto: adaptive from {ADAPTIVE_MIN_VOCAB} characters.",
        choices=OUTPUTS,
    )
    # Frequency ranks where the adaptive softmax's head and each tail cluster end
    # (AdaptiveLogSoftmaxWithLoss's cutoffs, without V); () when not adaptive or
    # not decided yet.
    cutoffs: tuple[int, ...] = setting((), "Adaptive softmax cluster boundaries.", cli=False)

    def __post_init__(self):
        if not isinstance(self.cell, str) or self.cell not in CELLS:
            raise CharRNNError(
                f"unknown cell {_shown(self.cell)}; choose one of {', '.join(CELLS)}"
            )
        limits = {
            "vocab_size": MAX_VOCAB,
            "layers": MAX_LAYERS,
            "hidden": MAX_HIDDEN,
            "embedding": MAX_EMBEDDING,
        }
        for name, most in limits.items():
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise CharRNNError(f"{name} must be a whole number, not {_shown(value)}")
            if not 1 <= value <= most:
                raise CharRNNError(f"{name} must be between 1 and {most:,}, not {value:,}")
            object.__setattr__(self, name, int(value))  # numpy integers become ints
        if not isinstance(self.dropout, numbers.Real) or not 0.0 <= self.dropout < 1.0:
            raise CharRNNError("dropout must be in [0, 1)")
        if not isinstance(self.output, str) or self.output not in OUTPUTS:
            raise CharRNNError(
                f"unknown output {_shown(self.output)}; choose one of {', '.join(OUTPUTS)}"
            )
        cutoffs = self.cutoffs
        if (
            not isinstance(cutoffs, (list, tuple))
            or len(cutoffs) > MAX_CLUSTERS
            or not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in cutoffs)
        ):
            raise CharRNNError(f"cutoffs must be a list of at most {MAX_CLUSTERS} whole numbers")
        cutoffs = tuple(int(c) for c in cutoffs)  # JSON gives lists
        object.__setattr__(self, "cutoffs", cutoffs)
        if cutoffs and self.output != "adaptive":
            raise CharRNNError("cutoffs are for the adaptive output layer only")
        bounds = (0, *cutoffs, self.vocab_size)
        if any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise CharRNNError(
                f"cutoffs must increase strictly between 0 and the vocabulary size "
                f"({self.vocab_size}): {list(cutoffs)}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


# --patience and --lr-drops for a text small for the model, as their --help says
# (training/policy.py decides which text is small, and says why these values).
SMALL_TEXT_PATIENCE = 3
SMALL_TEXT_LR_DROPS = 1

# `inspect --gradients`: how far back the gradient is followed (k = 1..K) unless
# --distance says (its --help shows it). With the passage read (inference/gradients.py:
# GRADIENT_PASSAGE_CHARS) it sets the cost: one backward step through every position per
# distance k, a (positions x 4H) by (4H x H) product for an LSTM.
GRADIENT_DISTANCE = 100


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. The defaults are the measured best for a few CPU minutes;
    those left None are decided when the run starts, from the text and the budget
    (training/policy.py)."""

    seq_len: int = setting(64, "Characters per truncated-BPTT window.", minimum=1)
    batch_size: int | None = setting(None, "Parallel streams per batch.", minimum=1, kind=int)
    lr: float = setting(6e-3, "Peak learning rate (AdamW).", minimum=0, min_open=True)
    final_lr_ratio: float = setting(
        0.05, "The cosine schedule ends at the peak learning rate times this.", minimum=0
    )
    warmup_steps: int = setting(20, "Steps of linear learning-rate warm-up.", minimum=0)
    # Decoupled (AdamW's) decay on the recurrent matrices, or on every weight
    # (weight_decay_on; layout.decayed_weights): measured in docs/defaults.md
    # ("Weight decay").
    weight_decay: float = setting(0.1, "AdamW weight decay.", minimum=0)
    weight_decay_on: str = setting(
        "recurrent",
        "The weights the decay reaches: the recurrent layers' matrices, or every weight.",
        choices=DECAY_SCOPES,
    )
    grad_clip: float = setting(
        1.0, "Global gradient-norm clipping threshold.", alias="--clip", minimum=0, min_open=True
    )
    max_time: float = setting(
        300.0,
        "Training budget in seconds (0 = none); the LR schedule spans it. "
        "With --resume: that many more seconds.",
        minimum=0,
    )
    max_steps: int = setting(
        0, "Stop after this many steps (0 = no limit). With --resume: that many more.", minimum=0
    )
    eval_every: int = setting(
        0,
        "Validate every N steps (0 = automatically: spread over the budget, and 4 times "
        "per pass over a text the budget passes over 4 times or more).",
        minimum=0,
    )
    seed: int = setting(0, "Random seed; the same seed repeats a CPU run exactly.")
    checkpoint_every: float = setting(
        60.0, "Seconds between saves of the complete training state (RUN/state).", minimum=0
    )
    keep: int = setting(2, "Training states kept in RUN/state (the newest).", minimum=1)
    patience: int | None = setting(
        None,
        "Stop after N validations in a row without a better validation loss (0 = never).",
        minimum=0,
        kind=int,
        default_text=f"0, or {SMALL_TEXT_PATIENCE} for a small text (as for --dropout)",
    )
    lr_drops: int | None = setting(
        None,
        "When --patience runs out, divide the learning rate by 10 and go on, this many "
        "times, before stopping.",
        minimum=0,
        kind=int,
        default_text=f"0, or {SMALL_TEXT_LR_DROPS} for a small text (as for --patience)",
    )
    sample_chars: int = setting(
        200,
        "Characters of the sample drawn at each validation, shown and kept in "
        "metrics.jsonl (0 = none).",
        minimum=0,
    )

    # What `--resume` may change: the budget (a new one extends the run) and how the
    # rest of the run is watched. The other settings make the run what it is.
    RESUMABLE = ("max_time", "max_steps", "patience", "lr_drops", "sample_chars")

    def __post_init__(self):
        if self.max_time <= 0 and self.max_steps <= 0:
            raise CharRNNError("set a budget: --max-time SECONDS or --max-steps N")
        for name in ("seq_len", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise CharRNNError(f"{name.replace('_', '-')} must be at least 1")
        if self.lr <= 0:
            raise CharRNNError("the learning rate must be positive")
        if self.weight_decay_on not in DECAY_SCOPES:
            raise CharRNNError(
                f"unknown weight-decay-on {_shown(self.weight_decay_on)}; "
                f"choose one of {', '.join(DECAY_SCOPES)}"
            )
        for name in ("patience", "lr_drops", "sample_chars"):
            if (getattr(self, name) or 0) < 0:
                raise CharRNNError(f"{name.replace('_', '-')} must be >= 0")


DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a run computes. Not part of the run's identity: a resumed run
    may move to another device or precision (it is the same run, not a bit-exact one)."""

    device: str = setting(
        "auto",
        "Where to compute: auto picks CUDA when present, else the CPU. May change on --resume.",
        choices=DEVICES,
    )
    precision: str = setting(
        "auto",
        "auto: bf16 autocast where the CPU or GPU has native bfloat16, else fp32 "
        "(on --resume: the run's own where possible). bf16/fp16: autocast, refused "
        "where not native; fp16 (CUDA only) adds loss scaling.",
        choices=PRECISIONS,
    )

    def __post_init__(self):
        if self.device not in DEVICES:
            raise CharRNNError(
                f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}"
            )
        if self.precision not in PRECISIONS:
            raise CharRNNError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )


@dataclass(frozen=True)
class SampleConfig:
    """How text is drawn from a model. Checked here, once, for the CLI and Python alike."""

    length: int = setting(500, "Characters to generate after the prime.", minimum=0)
    temperature: float = setting(
        0.8,
        "Softmax temperature; 0 always picks the most likely character.",
        short="-t",
        minimum=0,
    )
    top_k: int = setting(0, "Sample only among the k most likely characters (0 = all).", minimum=0)
    top_p: float = setting(
        1.0,
        "Nucleus sampling: the smallest set of characters with probability p.",
        minimum=0,
        maximum=1,
        min_open=True,
    )
    num_samples: int = setting(
        1, "Independent samples, generated side by side.", short="-n", minimum=1
    )
    stop: str | None = setting(None, "End a sample right after this string appears.", kind=str)
    seed: int | None = setting(
        None,
        "Random seed; the same seed gives the same text.",
        kind=int,
        default_text="a fresh one, printed to stderr",
    )

    def __post_init__(self):
        if self.length < 0:
            raise CharRNNError("length must be >= 0")
        if self.temperature < 0:
            raise CharRNNError("temperature must be >= 0")
        if self.top_k < 0:
            raise CharRNNError("top-k must be >= 0")
        if not 0 < self.top_p <= 1:
            raise CharRNNError("top-p must be in (0, 1]")
        if self.num_samples < 1:
            raise CharRNNError("num-samples must be at least 1")
        if self.stop == "":
            raise CharRNNError("stop must not be empty")


ADAPT_SCOPES = ("all", "output")
# The step sizes measured best (benchmarks/adapt.py; docs/guide/adapting.md) when all the
# weights learn, and when only the output layer does.
ADAPT_RATE = 0.002
ADAPT_RATE_OUTPUT = 0.005


@dataclass(frozen=True)
class AdaptConfig:
    """Dynamic evaluation (inference/adapt.py): how a model keeps learning from the text
    it reads. Each segment is predicted first, then one RMS-normalised step on it moves
    the weights, which `decay` pulls back towards the trained ones."""

    adapt_rate: float | None = setting(
        None,
        "Step size of the update after each segment (0: read without learning).",
        kind=float,
        minimum=0,
        default_text=f"{ADAPT_RATE}, or {ADAPT_RATE_OUTPUT} with --adapt-scope output",
    )
    adapt_segment: int = setting(128, "Characters predicted between two updates.", minimum=1)
    adapt_beta: float = setting(
        0.99,
        "How slowly the mean square of the gradients forgets.",
        minimum=0,
        maximum=1,
        max_open=True,
        cli=False,
    )
    adapt_decay: float = setting(
        0.003,
        "Share of its distance from the trained weights each weight goes back per update.",
        minimum=0,
        maximum=1,
    )
    adapt_scope: str = setting(
        "all",
        "What learns: all the weights, or only the output layer (no gradient through the "
        "recurrence: about half the time, a smaller gain).",
        choices=ADAPT_SCOPES,
    )

    def __post_init__(self):
        if self.adapt_scope not in ADAPT_SCOPES:
            raise CharRNNError(
                f"unknown adapt scope {self.adapt_scope!r}; choose one of {', '.join(ADAPT_SCOPES)}"
            )
        if self.adapt_rate is not None and self.adapt_rate < 0:
            raise CharRNNError("adapt rate must be >= 0")
        if self.adapt_segment < 1:
            raise CharRNNError("adapt segment must be at least 1")
        if not 0 <= self.adapt_beta < 1:
            raise CharRNNError("adapt beta must be in [0, 1)")
        if not 0 <= self.adapt_decay <= 1:
            raise CharRNNError("adapt decay must be in [0, 1]")
