"""Settings, one frozen dataclass per concern; the single source of truth for defaults.

Each field declares its default, its command-line help and its bounds once
(`setting`); the CLI generates its options from them (cli/options.py), and
every model file stores the ModelConfig and TrainConfig it was made with.
No torch here, so `--help` is fast.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, replace

from .errors import CharRNNError


def setting(
    default,
    help: str,
    *,
    option: str | None = None,
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

    `option` overrides the option name (default: --field-name), `kind` the value
    type (default: the default's type), `flag` makes a bool an on-switch and
    `negatable` a --name/--no-name pair, `path` a file name; `cli=False` keeps the field off the
    command line; `default_text` is shown instead of the default in --help.
    """
    meta = {
        "help": help,
        "option": option,
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
        option="--val",
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
OUTPUTS = ("auto", "softmax", "adaptive")

# The output layer. A full softmax costs hidden x V per character; above a few
# thousand symbols that is most of every step (training, scoring, sampling). An
# adaptive softmax (Grave et al. 2017, torch.nn.AdaptiveLogSoftmaxWithLoss) puts
# the frequent symbols in a head, which also holds one logit per tail cluster,
# and the rare ones in tail clusters reached through narrower projections: its
# cost grows with the head and the projections, hardly with V.
ADAPTIVE_MIN_VOCAB = 1000  # "auto" picks the adaptive softmax from this alphabet size
# ... for a text with at least this many training characters per symbol. On a
# small text the budget covers many passes anyway and rare symbols need the full
# softmax's rows: 90 s on the 300 Tang poems (10 characters per symbol) gave
# 4.8151 nats/char with the softmax, 4.9628 adaptive; on manpages-zh (1,812
# characters per symbol) 2.8638 with the softmax, 2.5103 adaptive (and 2x the speed).
ADAPTIVE_MIN_CHARS_PER_SYMBOL = 100
# The head: the most frequent symbols up to HEAD_SHARE of the training text
# (each character then usually needs the head alone), at least HEAD_MIN symbols
# (below that the clusters' overhead outweighs what they save), at most
# V * HEAD_MAX_FRACTION (the head's hidden x head product is the cost that remains).
# manpages-zh, 90 s, Zen 3: a head for 80% of the text (144 symbols) trained at 18,238
# chars/s to 2.4947 nats/char, one for 90% (318) at 17,233 to 2.5126 (BENCHMARKS.md).
HEAD_SHARE = 0.8
HEAD_MIN = 64
HEAD_MAX_FRACTION = 1 / 8
# Tail cluster k has CLUSTER_GROWTH**k times the head's size (the last one takes
# what is left) and a projection of hidden / PROJECTION_DIVISOR**k units: rarer
# symbols are seen less, so they get fewer dimensions (torch's div_value).
CLUSTER_GROWTH = 4
PROJECTION_DIVISOR = 4

# Upper bounds on a model's shape. Real models stay far below them; they exist so that a
# damaged or hostile model file (which can say anything) is refused before its config
# is used at all: a config is only compared with the file's tensors once it is within
# them (model/modelfile.py), and the work that comparison takes grows with these.
MAX_VOCAB = 0x110000  # every Unicode code point
MAX_HIDDEN = 1 << 16  # one LSTM layer this wide is 64 GiB of weights (char-rnn used <= 1,024)
MAX_EMBEDDING = 1 << 16
MAX_LAYERS = 256
# Tail clusters grow CLUSTER_GROWTH-fold, so even MAX_VOCAB symbols need fewer than 16.
MAX_CLUSTERS = 32


def frequency_order(counts) -> list[int]:
    """Vocabulary ids from the most to the least frequent (ties: the lower id first),
    given each id's count in the training text."""
    return sorted(range(len(counts)), key=lambda i: (-counts[i], i))


def adaptive_cutoffs(counts) -> tuple[int, ...]:
    """The cluster boundaries, as frequency ranks, for an alphabet whose symbols occur
    `counts` times (in id order) in the training text: (head size, end of cluster 1,
    ...), each below V. See HEAD_SHARE, HEAD_MIN, HEAD_MAX_FRACTION, CLUSTER_GROWTH."""
    vocab = len(counts)
    if vocab < 2:
        raise CharRNNError("an adaptive softmax needs at least 2 characters")
    ranked = sorted(counts, reverse=True)
    total, covered, share_head = sum(ranked), 0, vocab
    for rank, count in enumerate(ranked, start=1):
        covered += count
        if total and covered >= HEAD_SHARE * total:
            share_head = rank
            break
    least = min(HEAD_MIN, vocab // 2)  # small alphabets forced into clusters: half in the head
    most = max(least, int(vocab * HEAD_MAX_FRACTION))
    head = max(1, min(max(share_head, least), most, vocab - 1))
    cutoffs, end, size = [head], head, head
    while True:
        size *= CLUSTER_GROWTH
        if end + size >= vocab:
            return tuple(cutoffs)
        end += size
        cutoffs.append(end)


def _shown(value) -> str:
    """A value in an error line, cut short: it may come from a damaged file."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a CharRNN. The defaults are the measured best for a few CPU minutes.

    A model holds a resolved config (`resolved`): output "softmax", or "adaptive"
    with its cutoffs; "auto" is decided when a run starts, from the corpus."""

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

    def resolved(self, counts=None) -> ModelConfig:
        """This config with its output layer decided: "auto" becomes "adaptive" from
        ADAPTIVE_MIN_VOCAB characters when the text (`counts`) has at least
        ADAPTIVE_MIN_CHARS_PER_SYMBOL characters per symbol, else "softmax"; an
        adaptive layer without cutoffs gets adaptive_cutoffs(counts). `counts`: each
        id's count in the training text (None: unknown, all equal)."""
        output = self.output
        if output == "auto":
            large = self.vocab_size >= ADAPTIVE_MIN_VOCAB
            text = sum(counts) if counts is not None else None
            enough = text is None or text >= ADAPTIVE_MIN_CHARS_PER_SYMBOL * self.vocab_size
            output = "adaptive" if large and enough else "softmax"
        if output == "softmax" or self.cutoffs:
            return replace(self, output=output)
        if self.vocab_size < 2:
            return replace(self, output="softmax")  # one character: nothing to cluster
        counts = [1] * self.vocab_size if counts is None else counts
        return replace(self, output=output, cutoffs=adaptive_cutoffs(counts))

    def clusters(self) -> list[tuple[int, int]]:
        """(size, projection width) of each tail cluster of an adaptive config."""
        bounds = (*self.cutoffs, self.vocab_size)
        return [
            (end - begin, max(1, self.hidden // PROJECTION_DIVISOR ** (k + 1)))
            for k, (begin, end) in enumerate(zip(bounds, bounds[1:]))
        ]

    def parameter_count(self) -> int:
        """Number of weights of the CharRNN this config builds (no torch needed)."""
        config = self.resolved()
        hidden, embedding, vocab = config.hidden, config.embedding, config.vocab_size
        recurrent = memorising_parameter_count(config)
        if config.output == "softmax":
            return vocab * embedding + recurrent + hidden * vocab + vocab
        clusters = config.clusters()
        head = config.cutoffs[0] + len(clusters)
        tails = sum(width * (hidden + size) for size, width in clusters)
        return vocab * embedding + recurrent + (hidden + 1) * head + tails


def memorising_parameter_count(config: ModelConfig) -> int:
    """The weights that can learn a text by heart: the recurrent layers', which carry
    context from one character to the next. The embedding and the output layer are
    one row per symbol of the alphabet (a large alphabet makes them large without
    letting the model remember more of the text), so they are left out."""
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[config.cell]
    hidden = config.hidden
    first = gates * hidden * (config.embedding + hidden + 2)  # W_ih, W_hh, two biases
    return first + (config.layers - 1) * gates * hidden * (2 * hidden + 2)


def size_advice(config: ModelConfig, train_chars: int) -> str | None:
    """char-rnn's rule of thumb: about as many parameters as training characters,
    counting the ones that can memorise (memorising_parameter_count).

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
    characters per recurrent parameter (memorising_parameter_count)."""
    return train_chars < SMALL_TEXT_CHARS_PER_PARAMETER * memorising_parameter_count(config)


def default_dropout(config: ModelConfig, train_chars: int) -> float:
    """The dropout `charrnn train` uses when none is given: SMALL_TEXT_DROPOUT for a
    small text (is_small_text), else 0."""
    return SMALL_TEXT_DROPOUT if is_small_text(config, train_chars) else 0.0


# Extending a run (`charrnn train --resume RUN --max-time S`) starts a new
# learning-rate segment: warm-up, then a cosine from lr * EXTENSION_PEAK_RATIO
# down to lr * final_lr_ratio over the new budget: a warm restart. Measured
# (benchmarks/extend.py, Zen 3, a 60 s run extended by 60 s; best validation
# nats/char with peaks 1 / 0.3 / 0.05, and one straight 120 s run): psalms 1.1008
# / 1.1290 / 1.1617, straight 1.0907; Shakespeare 1.5479 / 1.5663 / 1.5852,
# straight 1.5455. The full peak was best on both, within 0.011 of the straight run.
EXTENSION_PEAK_RATIO = 1.0

# Early stopping for a small text (is_small_text): stop after this many
# validations in a row without a better validation loss. A model that can learn
# its text by heart passes its best early and only gets worse after it. Measured
# (benchmarks/patience.py, Zen 3, 180 s on the first 30,000 characters of psalms):
# without early stopping the best validation was at step 305 of 2,808 (1.4936
# nats/char); patience 3 stopped at 68.7 s, step 986, best 1.4651 (step 356).
# Other texts train to their budget unless --patience is given.
SMALL_TEXT_PATIENCE = 3


def default_patience(config: ModelConfig, train_chars: int) -> int:
    """The patience `charrnn train` uses when none is given: SMALL_TEXT_PATIENCE for a
    small text (is_small_text), else 0 (never stop early)."""
    return SMALL_TEXT_PATIENCE if is_small_text(config, train_chars) else 0


# On a small text, when patience first runs out, training goes back to the best
# model and on at a tenth of the learning rate (schedule.LoopState.add_validation)
# before patience stops it. Measured (benchmarks/small_texts.py, 60 s, AMD EPYC Zen 4,
# 7 small texts, best validation nats/char): one drop against none: better on 5 of
# 7 texts by 0.006-0.021 (psalms 30k 1.4620 -> 1.4460, Python source 1.5787 ->
# 1.5576), worse on 2 by 0.008-0.009; a second drop changed nothing beyond noise.
SMALL_TEXT_LR_DROPS = 1


def default_lr_drops(config: ModelConfig, train_chars: int) -> int:
    """The lr_drops `charrnn train` uses when none is given: SMALL_TEXT_LR_DROPS for a
    small text (is_small_text), else 0."""
    return SMALL_TEXT_LR_DROPS if is_small_text(config, train_chars) else 0


# Characters of the sample written at each validation (0 = none).
DEFAULT_SAMPLE_CHARS = 200

# `inspect --gradients`: how far back the gradient is followed (k = 1..K) unless
# --distance says, and how much of the model's training text it reads when given no text.
# The two set the cost: one backward step through every position per distance k, a
# (positions x 4H) by (4H x H) product for an LSTM.
GRADIENT_DISTANCE = 100
GRADIENT_PASSAGE_CHARS = 400


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. The defaults are the measured best for a few CPU minutes."""

    seq_len: int = setting(64, "Characters per truncated-BPTT window.", minimum=1)
    batch_size: int = setting(16, "Parallel streams per batch.", minimum=1)
    lr: float = setting(6e-3, "Peak learning rate (AdamW).", minimum=0, min_open=True)
    final_lr_ratio: float = setting(
        0.05, "The cosine schedule ends at the peak learning rate times this.", minimum=0
    )
    warmup_steps: int = setting(20, "Steps of linear learning-rate warm-up.", minimum=0)
    weight_decay: float = setting(0.0, "AdamW weight decay.", minimum=0)
    grad_clip: float = setting(
        1.0, "Global gradient-norm clipping threshold.", option="--clip", minimum=0, min_open=True
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
        DEFAULT_SAMPLE_CHARS,
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
            if getattr(self, name) < 1:
                raise CharRNNError(f"{name.replace('_', '-')} must be at least 1")
        if self.lr <= 0:
            raise CharRNNError("the learning rate must be positive")
        for name in ("patience", "lr_drops", "sample_chars"):
            if (getattr(self, name) or 0) < 0:
                raise CharRNNError(f"{name.replace('_', '-')} must be >= 0")

    def progress(self, elapsed: float, step: int) -> float:
        """Fraction of the budget used: by time or by steps, whichever is further."""
        by_time = elapsed / self.max_time if self.max_time > 0 else 0.0
        by_steps = step / self.max_steps if self.max_steps > 0 else 0.0
        return min(1.0, max(by_time, by_steps))

    def learning_rate(self, step: int, progress: float, peak_ratio: float = 1.0) -> float:
        """Linear warm-up, then cosine decay over the budget (time or steps), from
        lr * peak_ratio (1 for a run's first budget; EXTENSION_PEAK_RATIO for an
        extension) to lr * final_lr_ratio; `step` counts from the budget's start."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr * warm * (self.final_lr_ratio + (peak_ratio - self.final_lr_ratio) * cosine)


# Fine-tuning (`--init-from MODEL`): a fresh AdamW and schedule start from trained
# weights, so the defaults differ from a run from scratch. These apply where the user
# gave no value. An outside trial (60 s, psalms, the bundled model) found AdamW 2e-3
# with dropout 0.2 fine-tuned beating 6e-3 / 0.5 from scratch on small texts; the
# values are to be settled with benchmarks/finetune.py.
FINETUNE_LR = 2e-3  # a third of TrainConfig.lr: large steps would undo what the model knows
FINETUNE_WARMUP_STEPS = 20  # as from scratch: AdamW's moments start at zero either way
FINETUNE_DROPOUT = 0.2  # the architecture is the model's; this regularises it on a small text
FINETUNE_TRAIN_DEFAULTS = {"lr": FINETUNE_LR, "warmup_steps": FINETUNE_WARMUP_STEPS}


def train_config(settings: dict, finetune: bool = False) -> TrainConfig:
    """A TrainConfig from `settings` (field -> value; missing or None: the default), with
    FINETUNE_TRAIN_DEFAULTS in place of the defaults when `finetune` (--init-from)."""
    given = {name: value for name, value in settings.items() if value is not None}
    return TrainConfig(**{**(FINETUNE_TRAIN_DEFAULTS if finetune else {}), **given})


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
