"""The `charrnn` command line: parses options and delegates to the library.

Results go to stdout; progress bars, tables and warnings go to stderr.
Library errors (CharRNNError) become one line `Error: ...` and exit code 1.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

import click

from .config import (
    DEVICES,
    PRECISIONS,
    DataConfig,
    ModelConfig,
    RuntimeConfig,
    TrainConfig,
    size_advice,
)
from .errors import CharRNNError, UnknownCharactersError

# Importing torch costs a second; commands import the library lazily so that
# `charrnn --help` and usage errors stay instant.


def _default(cls, name: str):
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def _from_rank(message: str) -> str:
    """Under torchrun, say which process an error line comes from (rank 0's stays plain)."""
    rank = os.environ.get("RANK", "0")
    return message if rank == "0" else f"rank {rank}: {message}"


class CharRNNGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CharRNNError as exc:
            raise click.ClickException(_from_rank(str(exc))) from None
        except BrokenPipeError:
            # `charrnn sample | head`: the reader left; that is not an error.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except OSError as exc:  # disk full, permission denied, ...
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(_from_rank(f"{where}{exc.strerror or exc}")) from None


@click.group(cls=CharRNNGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="charrnn")
def cli():
    """Character-level RNN / LSTM / GRU language models: train, sample, score."""


def _stderr(message: str) -> None:
    click.echo(message, err=True)


# --------------------------------------------------------------------------- preprocess
DATA_OPTIONS = [
    click.option(
        "--val",
        "val_file",
        type=click.Path(dir_okay=False),
        help="Validation text file (default: split off the end of the corpus).",
    ),
    click.option(
        "--val-fraction",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=_default(DataConfig, "val_fraction"),
        show_default=True,
        help="Fraction at the end of the corpus used for validation, cut at a line.",
    ),
    click.option(
        "--encoding",
        default=_default(DataConfig, "encoding"),
        show_default=True,
        help="Text encoding of the corpus files.",
    ),
    click.option(
        "--errors",
        type=click.Choice(["strict", "replace"]),
        default=_default(DataConfig, "errors"),
        show_default=True,
        help="Undecodable bytes: stop with an error, or replace them with U+FFFD.",
    ),
    click.option(
        "--keep-newlines",
        is_flag=True,
        help="Keep CRLF and lone CR as they are (by default they become LF).",
    ),
    click.option(
        "--normalize/--no-normalize",
        default=_default(DataConfig, "normalize"),
        show_default=True,
        help="Put text in Unicode NFC form (here, and again when sampling and scoring).",
    ),
]
DATA_OPTION_NAMES = ("val_file", "val_fraction", "encoding", "errors", "keep_newlines", "normalize")


def _data_config(options: dict) -> DataConfig:
    return DataConfig(**{name: options[name] for name in DATA_OPTION_NAMES})


class ByteProgress:
    """A tqdm bar in bytes for preprocessing (both passes over the sources)."""

    def __init__(self, sources):
        from tqdm import tqdm

        total = 2 * sum(Path(p).stat().st_size for p in sources if p and Path(p).is_file())
        self.bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc="preprocess",
            file=sys.stderr,
            disable=None,
            leave=False,
        )

    def __call__(self, count: int) -> None:
        self.bar.update(count)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def _warn_about_corpus(prepared) -> None:
    controls = prepared.meta.get("control_chars", 0)
    if controls:
        _stderr(
            f"warning: the corpus holds {controls} control character(s) "
            "(other than tab, newline, carriage return and form feed)"
        )


def _apply(options):
    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@cli.command()
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Output directory [default: CORPUS.charrnn beside the corpus].",
)
@_apply(DATA_OPTIONS)
def preprocess(corpus, out, **options):
    """Encode CORPUS into a compact id array plus vocabulary, for `charrnn train`.

    Optional: train does this itself when needed and reuses the output
    (CORPUS.charrnn) when it is up to date.
    """
    from .corpus import default_prepared_dir
    from .corpus import preprocess as run_preprocess

    out = Path(out) if out else default_prepared_dir(corpus)
    with ByteProgress([corpus, options["val_file"]]) as progress:
        prepared = run_preprocess(corpus, out, _data_config(options), progress)
    _warn_about_corpus(prepared)
    click.echo(
        f"{out}: {prepared.meta['chars']} characters ({len(prepared.train)} train, "
        f"{len(prepared.val)} validation), vocabulary of {len(prepared.vocab)}"
    )


# --------------------------------------------------------------------------- train
class ProgressReporter:
    """tqdm bar on stderr while training; a rich table at the end."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.smoothed = None

    def on_start(self, info):
        from tqdm import tqdm

        if not self.quiet:
            _stderr(
                f"training {info['model_config']['cell']} "
                f"{info['model_config']['layers']}x{info['model_config']['hidden']} "
                f"({info['parameters']:,} parameters) on {info['train_chars']:,} characters, "
                f"validating on {info['val_chars']:,}"
                + (f"; resuming at step {info['resumed_at']:,}" if info["resumed_at"] else "")
            )
        self.bar = tqdm(
            total=1000,
            unit="",
            file=sys.stderr,
            disable=self.quiet or None,
            bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
        )

    def on_fault(self, message):
        if self.bar is not None and not self.bar.disable:
            self.bar.write(f"warning: {message}", file=sys.stderr)
        else:
            _stderr(f"warning: {message}")

    def on_step(self, step, loss, lr, progress):
        self.smoothed = loss if self.smoothed is None else 0.95 * self.smoothed + 0.05 * loss
        if self.bar is not None and not self.bar.disable:
            self.bar.update(int(progress * 1000) - self.bar.n)
            self.bar.set_postfix_str(
                f"step {step} loss {self.smoothed:.3f} bpc {self.smoothed / math.log(2):.3f} "
                f"lr {lr:.1e}",
                refresh=False,
            )

    def on_eval(self, record):
        if not self.quiet:
            line = (
                f"step {record['step']}: val {record['val_loss']:.4f} nats/char "
                f"({record['val_bpc']:.4f} bits/char), {record['chars_per_s']:,.0f} chars/s"
            )
            if self.bar is not None and not self.bar.disable:
                self.bar.write(line, file=sys.stderr)
            else:
                _stderr(line)

    def on_end(self, result):
        if self.bar is not None:
            self.bar.update(1000 - self.bar.n)
            self.bar.close()
        if self.quiet:
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="charrnn train", show_header=False)
        for key, value in [
            ("steps", f"{result.steps:,}"),
            ("characters seen", f"{result.chars_seen:,}"),
            (
                "training time",
                f"{result.train_seconds:.1f} s ({result.eval_seconds:.1f} s of it validating)",
            ),
            ("throughput", f"{result.chars_per_s:,.0f} chars/s"),
            (
                "best validation",
                f"{result.best_val_nats:.4f} nats/char, {result.best_val_bpc:.4f} bits/char",
            ),
            ("best model", str(result.best_model)),
            ("last model", str(result.last_model)),
        ]:
            table.add_row(key, value)
        Console(stderr=True).print(table)


@cli.command()
@click.argument("corpus", type=click.Path(), required=False)
@_apply(DATA_OPTIONS)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Run directory for best/last model files [default: runs/<corpus name>].",
)
@click.option("--force", is_flag=True, help="Overwrite models already in the run directory.")
@click.option(
    "--cell",
    type=click.Choice(["rnn", "lstm", "gru"]),
    default=_default(ModelConfig, "cell"),
    show_default=True,
    help="Recurrent cell.",
)
@click.option(
    "--layers",
    type=click.IntRange(1),
    default=_default(ModelConfig, "layers"),
    show_default=True,
    help="Stacked recurrent layers.",
)
@click.option(
    "--hidden",
    type=click.IntRange(1),
    default=_default(ModelConfig, "hidden"),
    show_default=True,
    help="Hidden units per layer.",
)
@click.option(
    "--embedding",
    type=click.IntRange(1),
    default=_default(ModelConfig, "embedding"),
    show_default=True,
    help="Character embedding size.",
)
@click.option(
    "--dropout",
    type=click.FloatRange(0, 1, max_open=True),
    default=_default(ModelConfig, "dropout"),
    show_default=True,
    help="Dropout between layers and before the output layer.",
)
@click.option(
    "--seq-len",
    type=click.IntRange(1),
    default=_default(TrainConfig, "seq_len"),
    show_default=True,
    help="Characters per truncated-BPTT window.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=_default(TrainConfig, "batch_size"),
    show_default=True,
    help="Parallel streams per batch.",
)
@click.option(
    "--lr",
    type=click.FloatRange(0, min_open=True),
    default=_default(TrainConfig, "lr"),
    show_default=True,
    help="Peak learning rate (AdamW).",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(0),
    default=_default(TrainConfig, "weight_decay"),
    show_default=True,
    help="AdamW weight decay.",
)
@click.option(
    "--clip",
    type=click.FloatRange(0, min_open=True),
    default=_default(TrainConfig, "grad_clip"),
    show_default=True,
    help="Global gradient-norm clipping threshold.",
)
@click.option(
    "--max-time",
    type=click.FloatRange(0),
    default=_default(TrainConfig, "max_time"),
    show_default=True,
    help="Training budget in seconds (0 = none); the LR schedule spans it.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(0),
    default=_default(TrainConfig, "max_steps"),
    show_default=True,
    help="Stop after this many steps (0 = no limit).",
)
@click.option(
    "--eval-every",
    type=click.IntRange(0),
    default=_default(TrainConfig, "eval_every"),
    show_default=True,
    help="Validate every N steps (0 = about four times per budget).",
)
@click.option(
    "--seed",
    type=int,
    default=_default(TrainConfig, "seed"),
    show_default=True,
    help="Random seed; the same seed repeats a CPU run exactly.",
)
@click.option(
    "--checkpoint-every",
    type=click.FloatRange(0),
    default=_default(TrainConfig, "checkpoint_every"),
    show_default=True,
    help="Seconds between saves of the complete training state (RUN/state).",
)
@click.option(
    "--keep",
    type=click.IntRange(1),
    default=_default(TrainConfig, "keep"),
    show_default=True,
    help="Training states kept in RUN/state (the newest).",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    help="Continue the run in this directory exactly where it stopped.",
)
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default=_default(RuntimeConfig, "device"),
    show_default=True,
    help="Where to train: auto picks CUDA when present, else the CPU. May change on --resume.",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=_default(RuntimeConfig, "precision"),
    show_default=True,
    help="bf16/fp16: mixed precision (autocast) on CUDA; fp16 adds loss scaling. "
    "May change on --resume.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output on stderr.")
@click.pass_context
def train(ctx, corpus, out, force, resume_dir, device, precision, as_json, quiet, **options):
    """Train a model on CORPUS (a text file or a preprocessed directory).

    Without CORPUS, trains on the bundled Shakespeare text. Writes
    best.safetensors and last.safetensors into the run directory, and the
    complete training state into RUN/state, so that `--resume RUN` continues
    exactly. Ctrl-C (or SIGTERM) saves a state and stops; a second Ctrl-C
    stops at once.

    Under `torchrun --nproc_per_node N -m charrnn train ...` the N processes
    train one model with DistributedDataParallel, each on batch-size/N streams.
    """
    from .runtime import start_runtime

    runtime = start_runtime(RuntimeConfig(device, precision))
    try:
        result = _train(ctx, corpus, out, force, resume_dir, quiet, options, runtime)
    finally:
        runtime.close()
    if as_json and runtime.group.is_main:
        click.echo(json.dumps(result.to_dict()))


def _train(ctx, corpus, out, force, resume_dir, quiet, options, runtime):
    from .train import Reporter, Trainer

    main_process = runtime.group.is_main
    # Only rank 0 reports; the others' warnings would repeat its own.
    reporter = ProgressReporter(quiet) if main_process else Reporter()
    if resume_dir:
        given = [
            name
            for name in options
            if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
        ]
        if corpus or out or force or given:
            flags = ", ".join(
                ["CORPUS"] * bool(corpus)
                + ["--out"] * bool(out)
                + ["--force"] * force
                + [f"--{n.replace('_', '-')}" for n in given]
            )
            raise click.UsageError(
                f"--resume takes every setting from the run directory; drop {flags}"
            )
        run_dir = Path(resume_dir)
        trainer = Trainer.resume(run_dir, reporter, runtime)
    else:
        run_dir, trainer = _start_run(corpus, out, force, options, reporter, runtime)
    return _run_with_signals(trainer, run_dir, main_process)


def _start_run(corpus, out, force, options, reporter, runtime):
    from .bundled import bundled_corpus
    from .checkpoint import MODELS_DIR, STATE_DIR, latest_state
    from .corpus import prepare
    from .train import METRICS_LOG, STEP_LOG, Trainer

    corpus = Path(corpus) if corpus else bundled_corpus()
    run_dir = Path(out) if out else Path("runs") / corpus.name.split(".")[0]
    models = [run_dir / "best.safetensors", run_dir / "last.safetensors"]
    if not force and (any(p.exists() for p in models) or (run_dir / STATE_DIR).is_dir()):
        state = latest_state(run_dir)
        where = f" (a training state at step {state.meta['loop']['step']})" if state else ""
        raise CharRNNError(
            f"{run_dir} already holds a training run{where}; pass --resume {run_dir} to "
            "continue it, --force to start over (deleting it), or --out DIR to train elsewhere"
        )
    group = runtime.group
    group.barrier()  # every rank has looked at the run directory before rank 0 changes it
    if force and group.is_main:
        for path in models + [run_dir / METRICS_LOG, run_dir / STEP_LOG]:
            path.unlink(missing_ok=True)
        for folder in (STATE_DIR, MODELS_DIR):
            shutil.rmtree(run_dir / folder, ignore_errors=True)
    data_config = _data_config(options)
    train_config = TrainConfig(
        seq_len=options["seq_len"],
        batch_size=options["batch_size"],
        lr=options["lr"],
        weight_decay=options["weight_decay"],
        grad_clip=options["clip"],
        max_time=options["max_time"],
        max_steps=options["max_steps"],
        eval_every=options["eval_every"],
        seed=options["seed"],
        checkpoint_every=options["checkpoint_every"],
        keep=options["keep"],
    )
    # Rank 0 encodes the corpus (when needed); the others then reuse what it wrote.
    prepared = None
    if group.is_main:
        with ByteProgress([corpus, data_config.val_file]) as progress:
            prepared = prepare(corpus, run_dir / "data", data_config, progress)
        _warn_about_corpus(prepared)
    group.barrier()
    if prepared is None:
        prepared = prepare(corpus, run_dir / "data", data_config)
    model_config = ModelConfig(
        vocab_size=len(prepared.vocab),
        cell=options["cell"],
        layers=options["layers"],
        hidden=options["hidden"],
        embedding=options["embedding"],
        dropout=options["dropout"],
    )
    advice = size_advice(model_config, len(prepared.train))
    if advice and group.is_main:
        _stderr(f"warning: {advice}")
    return run_dir, Trainer(prepared, model_config, train_config, run_dir, reporter, runtime)


EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


# Under torchrun a Ctrl-C reaches each worker twice (from the terminal, and forwarded by
# the launcher); a repeat this soon after the first is the same request.
SAME_REQUEST_SECONDS = 2.0


def _run_with_signals(trainer, run_dir, main_process=True):
    """Run training; the first SIGINT/SIGTERM stops it after the current step with a
    saved state (exit 130/143), a second SIGINT interrupts at once. Under torchrun
    every process gets the signal; rank 0's decides for all, and rank 0 reports."""
    from .train import TrainingInterrupted

    received: list[int] = []
    first_at: list[float] = []
    distributed = trainer.group.distributed

    def on_signal(signum, frame):
        if received:
            if distributed and time.monotonic() - first_at[0] < SAME_REQUEST_SECONDS:
                return
            raise KeyboardInterrupt  # second signal: stop now (files are written atomically)
        received.append(signum)
        first_at.append(time.monotonic())
        if main_process:
            _stderr(
                f"\n{signal.Signals(signum).name}: finishing this step and saving the "
                "training state (press Ctrl-C again to stop at once)"
            )

    previous = {sig: signal.signal(sig, on_signal) for sig in EXIT_CODES}
    stopped = False
    try:
        return trainer.run(should_stop=lambda: bool(received))
    except TrainingInterrupted as stop:
        stopped = True
        if main_process:
            _stderr(
                f"stopped at step {stop.step}; continue with: charrnn train --resume {run_dir}"
            )
        # A rank other than 0 may not have seen the signal itself.
        sys.exit(EXIT_CODES[received[0]] if received else 130)
    except KeyboardInterrupt:
        stopped = True
        if main_process:
            _stderr(
                f"interrupted; the last complete state in {run_dir} is intact: "
                f"charrnn train --resume {run_dir}"
            )
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            # Exiting after a stop, a late Ctrl-C must not put a traceback into the shutdown.
            signal.signal(sig, signal.SIG_IGN if stopped else handler)


# --------------------------------------------------------------------------- sample / score
MODEL_OPTION = click.option(
    "--model",
    "model_path",
    type=click.Path(),
    help="Model file or run directory [default: the bundled Shakespeare model].",
)


def _load(model_path):
    from .bundled import bundled_model
    from .modelfile import load_model

    return load_model(model_path or bundled_model())


@cli.command()
@MODEL_OPTION
@click.option("--prime", default="", help="Text the sample starts with (it is printed too).")
@click.option(
    "--length",
    type=click.IntRange(0),
    default=500,
    show_default=True,
    help="Characters to generate after the prime.",
)
@click.option(
    "--temperature",
    "-t",
    type=float,
    default=0.8,
    show_default=True,
    help="Softmax temperature; 0 always picks the most likely character.",
)
@click.option(
    "--top-k",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Sample only among the k most likely characters (0 = all).",
)
@click.option(
    "--top-p",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Nucleus sampling: the smallest set with probability p.",
)
@click.option("--stop", default=None, help="End a sample right after this string appears.")
@click.option(
    "--seed", type=int, default=None, help="Random seed [default: a fresh one, printed to stderr]."
)
@click.option(
    "--num-samples",
    "-n",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Independent samples, generated side by side.",
)
@click.option(
    "--separator", default="\n\n", show_default=repr("\n\n"), help="Printed between samples."
)
@click.option(
    "--skip-unknown",
    is_flag=True,
    help="Drop prime characters the model has never seen, with a warning (default: error).",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML report of the samples coloured by surprisal.",
)
def sample(
    model_path,
    prime,
    length,
    temperature,
    top_k,
    top_p,
    stop,
    seed,
    num_samples,
    separator,
    skip_unknown,
    html_file,
):
    """Generate text from a model; it streams to stdout as it is produced."""
    from .sample import generate
    from .vocab import normalize

    if temperature < 0:
        raise click.BadParameter("must be >= 0", param_hint="--temperature")
    loaded = _load(model_path)
    if seed is None:
        seed = secrets.randbelow(2**31)
        _stderr(f"seed: {seed}")
    prime = prime.replace("\\n", "\n")
    unknown = loaded.vocab.unknown_chars(prime)
    if unknown and skip_unknown:
        _stderr(
            f"warning: dropped prime character(s) the model has never seen: "
            f"{', '.join(repr(c) for c in unknown[:10])}"
        )
        prime = "".join(
            c for c in normalize(prime, loaded.vocab.normalization) if c in loaded.vocab
        )
    steps = generate(
        loaded.model,
        loaded.vocab,
        prime,
        length,
        temperature,
        top_k,
        top_p,
        num_samples,
        stop,
        seed,
    )
    out = sys.stdout
    pieces = [[prime] for _ in range(num_samples)]
    if num_samples == 1:
        out.write(prime)
        for chars in steps:
            out.write(chars[0])
            pieces[0].append(chars[0])
            if chars[0] == "\n":
                out.flush()
        out.write("\n")
    else:
        for chars in steps:
            for piece, char in zip(pieces, chars):
                piece.append(char)
        out.write(separator.join("".join(piece) for piece in pieces) + "\n")
    out.flush()
    if html_file:
        from .analysis import analyze_text
        from .render_html import surprisal_report

        samples = ["".join(piece) for piece in pieces]
        sections = [
            (f"sample {n + 1}", analyze_text(loaded.model, loaded.vocab, text))
            for n, text in enumerate(samples)
        ]
        about = [
            ("model", str(loaded.path)),
            ("prime", repr(prime)),
            ("temperature", f"{temperature:g}"),
            ("top-k / top-p", f"{top_k} / {top_p:g}"),
            ("seed", str(seed)),
            ("note", "surprisal is the model's own, at temperature 1"),
        ]
        _write_html(html_file, surprisal_report("charrnn sample", sections, about))


def _preview(text: str, width: int = 40) -> str:
    flat = text.replace("\n", "\\n").replace("\t", "\\t")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@cli.command()
@click.argument("texts", nargs=-1)
@MODEL_OPTION
@click.option(
    "--lines",
    "lines_file",
    type=click.File("r", encoding="utf-8"),
    help="Score each line of FILE as its own text ('-' = stdin).",
)
@click.option(
    "--file",
    "doc_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Score FILE as one document, the state carried throughout ('-' = stdin).",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Score a long document as one stream (slower; parallel streams differ "
    "by < 0.001 bits/char).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Characters the model has never seen are an error (by default they are skipped "
    "and counted).",
)
@click.option(
    "--show",
    is_flag=True,
    help="Print each text coloured by surprisal (bits) per character, with a legend.",
)
@click.option(
    "--top",
    type=click.IntRange(1),
    help="Show the model's K most likely next characters at each position.",
)
@click.option(
    "--at",
    "at_position",
    type=click.IntRange(0),
    help="With --top: only this position (0 = the first character).",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Write a self-contained HTML report: coloured text, per-character tooltips.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per text, then totals.")
def score(
    texts,
    model_path,
    lines_file,
    doc_file,
    exact,
    strict,
    show,
    top,
    at_position,
    html_file,
    as_json,
):
    """Score TEXTS: log-probability, nats and bits per character, perplexity.

    Each argument is one text. With no TEXTS, --lines or --file, reads one
    text per line from stdin. --show, --top and --html show what the model
    expected at each character (with --json: a "per_char" list per text).
    Colour follows the terminal; NO_COLOR=1 turns it off, FORCE_COLOR=1 on.
    """
    from .score import score_text, score_texts, total
    from .textfile import read_text

    items: list[tuple[str, str]] = [("arg", t) for t in texts]
    if lines_file is None and doc_file is None and not texts:
        if sys.stdin.isatty():
            raise click.UsageError("give TEXTS, --lines FILE, --file FILE, or pipe text in")
        lines_file = sys.stdin
    if lines_file is not None:
        items += [("line", line.rstrip("\r\n")) for line in lines_file]
    loaded = _load(model_path)
    if doc_file is not None:
        items.append(("file", sys.stdin.read() if doc_file == "-" else read_text(doc_file)))
    unknown = loaded.vocab.unknown_chars("".join(text for _, text in items))
    if strict and unknown:
        raise UnknownCharactersError(unknown)
    texts = [text for kind, text in items if kind != "file"]
    results = score_texts(loaded.model, loaded.vocab, texts)
    if doc_file is not None:
        results.append(score_text(loaded.model, loaded.vocab, items[-1][1], exact=exact))
    totals = total(results)
    if at_position is not None and not top:
        raise click.UsageError("--at goes with --top K")
    analyses = None
    if show or top or html_file:
        from .analysis import analyze_text

        analyses = [
            analyze_text(loaded.model, loaded.vocab, text, top_k=max(top or 0, 5))
            for _, text in items
        ]
        labels = [doc_file if kind == "file" else _preview(text) for kind, text in items]
        positions = [_positions(a, at_position) for a in analyses]
    if html_file:
        from .render_html import surprisal_report

        about = [("model", str(loaded.path)), ("texts", str(len(items)))]
        if len(items) > 1:
            about += [(f"total: {k}", v) for k, v in _score_summary(totals)]
        _write_html(
            html_file, surprisal_report("charrnn score", list(zip(labels, analyses)), about)
        )
    if as_json:
        for index, ((kind, text), result) in enumerate(zip(items, results)):
            shown = doc_file if kind == "file" else text
            record = {"text": shown, **result.to_dict()}
            if analyses is not None and (show or top):
                record["per_char"] = analyses[index].records(positions[index], top or 0)
            click.echo(json.dumps(record, ensure_ascii=False))
        click.echo(json.dumps({"total": True, "texts": len(results), **totals.to_dict()}))
    else:
        if show or top:
            _print_details(analyses, labels, positions, show, top)
        click.echo(
            f"{'bits/char':>9} {'nats/char':>9} {'perplexity':>10} {'chars':>8} "
            f"{'log-prob':>11}  text"
        )
        rows = [
            ((doc_file if kind == "file" else _preview(text)), r)
            for (kind, text), r in zip(items, results)
        ]
        if len(results) > 1:
            rows.append(("(total)", totals))
        for label, r in rows:
            click.echo(
                f"{r.bits_per_char:9.4f} {r.nats_per_char:9.4f} {r.perplexity:10.3f} "
                f"{r.chars:8d} {r.log_prob:11.2f}  {label}"
            )
    if totals.unknown_chars:
        _stderr(
            f"warning: skipped {totals.unknown_chars} character(s) the model has never "
            f"seen: {', '.join(repr(c) for c in unknown[:10])}"
        )


# --------------------------------------------------------------------------- inspect / info
def _read_one_text(text, text_file) -> str:
    from .textfile import read_text

    if text is not None and text_file is not None:
        raise click.UsageError("give TEXT or --file, not both")
    if text_file is not None:
        return sys.stdin.read() if text_file == "-" else read_text(text_file)
    if text is not None:
        return text.replace("\\n", "\n")
    if sys.stdin.isatty():
        raise click.UsageError("give TEXT, --file FILE, or pipe text in")
    return sys.stdin.read()


def _states(spec: str, cell: str) -> tuple[str, ...]:
    """--state h,c or gates or single gate letters, checked against the cell."""
    from .analysis import GATES, recorded_names

    names: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part == "gates":
            if not GATES[cell]:
                raise click.BadParameter("a vanilla RNN has no gates", param_hint="--state")
            names += GATES[cell]
        elif part in recorded_names(cell):
            names.append(part)
        else:
            choices = ", ".join(recorded_names(cell) + (("gates",) if GATES[cell] else ()))
            raise click.BadParameter(
                f"{part!r} is not recorded for a {cell} model; choose from {choices}",
                param_hint="--state",
            )
    if not names:
        raise click.BadParameter("name at least one state", param_hint="--state")
    return tuple(dict.fromkeys(names))


def _units(spec: str | None) -> list[int]:
    if not spec:
        return []
    units = []
    for part in spec.split(","):
        try:
            if "-" in part.strip()[1:]:
                first, last = part.split("-", 1)
                units += range(int(first), int(last) + 1)
            else:
                units.append(int(part))
        except ValueError:
            raise click.BadParameter(
                f"{part!r}: give unit numbers like 3,17 or 0-7", param_hint="--units"
            ) from None
    return units


@cli.command()
@click.argument("text", required=False)
@MODEL_OPTION
@click.option("--cells", is_flag=True, help="Show hidden-unit activations (the only mode for now).")
@click.option(
    "--file",
    "text_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Read the text from FILE ('-' = stdin).",
)
@click.option("--units", help="Units to show, e.g. 3,17 or 0-7.")
@click.option(
    "--state",
    "state_spec",
    default="h",
    show_default=True,
    help="What to show: h (hidden), c (LSTM cell state, coloured as tanh c), gates, or "
    "single gates: i,f,g,o (LSTM), r,z,n (GRU); comma-separated.",
)
@click.option(
    "--layer",
    type=int,
    default=-1,
    show_default=True,
    help="Layer to record (0 = first, -1 = last).",
)
@click.option(
    "--find",
    type=click.Choice(["quotes", "brackets", "line-position"]),
    help="List the units (of --state) most correlated with this feature of the text, "
    "and show the best ones unless --units is given.",
)
@click.option(
    "--count",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Units listed by --find.",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Write a self-contained HTML page of the activations.",
)
@click.option("--json", "as_json", is_flag=True, help="Print activations and matches as JSON.")
def inspect(
    text, model_path, cells, text_file, units, state_spec, layer, find, count, html_file, as_json
):
    """See what single units respond to: TEXT coloured by each unit's activation.

    Records the activations of one layer while reading TEXT (\\n in it is a
    newline), --file, or stdin. --find quotes|brackets|line-position lists the units whose
    activation follows that feature most closely (Pearson r): the classic
    quote-detecting cell. Colour follows the terminal, as for `score --show`.
    """
    from .analysis import find_units, record_activations, select_units, value_range

    if not cells:
        raise click.UsageError("choose what to inspect: --cells")
    content = _read_one_text(text, text_file)
    loaded = _load(model_path)
    states = _states(state_spec, loaded.config.cell)
    activations = record_activations(loaded.model, loaded.vocab, content, layer)
    if not activations.text:
        raise CharRNNError("the text has no character the model knows")
    chosen = select_units(activations, _units(units))
    matches = find_units(activations, find, states, count) if find else []
    if chosen:
        shown = [(name, unit) for unit in chosen for name in states]
    elif matches:
        shown = [(m.state, m.unit) for m in matches[:3]]
    else:
        raise click.UsageError("choose units: --units 3,17 or --find FEATURE")
    if activations.unknown_chars:
        _stderr(
            f"warning: skipped {activations.unknown_chars} character(s) the model has never seen"
        )
    about = [
        ("model", str(loaded.path)),
        (
            "layer",
            f"{activations.layer} of {loaded.config.layers} ({loaded.config.cell}, "
            f"{loaded.config.hidden} units)",
        ),
        ("characters", f"{len(activations.text):,}"),
    ]
    if html_file:
        from .render_html import activations_report

        _write_html(
            html_file,
            activations_report("charrnn inspect", activations, shown, about, matches, find),
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "text": activations.text,
                    "layer": activations.layer,
                    "matches": [{"state": m.state, "unit": m.unit, "r": m.r} for m in matches],
                    "units": [
                        {
                            "state": name,
                            "unit": unit,
                            "values": activations.values[name][:, unit].tolist(),
                        }
                        for name, unit in shown
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    from .render_terminal import (
        activation_heatmap,
        activation_legend,
        activation_title,
        units_table,
    )

    console = _stdout_console()
    color = _colored(console)
    if matches:
        console.print(units_table(matches, find, activations.layer))
    for name, unit in shown:
        click.echo(activation_title(activations, name, unit))
        _print_colored(console, color, activation_heatmap(activations, name, unit, color))
    # One legend per value range: sigmoid gates lie in [0, 1], the rest in [-1, 1].
    legends = {value_range(name): name for name, _ in shown}
    for name in legends.values():
        _print_colored(console, color, activation_legend(name, color))


@cli.command()
@click.argument("path", type=click.Path(), required=False)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Write the same as an HTML page with an SVG chart of the losses.",
)
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
def info(path, html_file, as_json):
    """Describe a model file or run directory: config, vocabulary, parameters,
    best validation loss, and train / validation loss over steps (from the
    run's metrics.jsonl). PATH defaults to the bundled model.
    """
    from .bundled import bundled_model
    from .runinfo import run_info

    described = run_info(path or bundled_model())
    if html_file:
        from .render_html import info_report

        title = f"charrnn info: {described.loaded.path.name}"
        _write_html(html_file, info_report(title, described.rows(), described.history))
    if as_json:
        click.echo(json.dumps(described.to_dict()))
        return
    from .render_terminal import info_table, loss_plot

    console = _stdout_console()
    console.print(info_table(described.rows(), "charrnn info"))
    if described.history:
        for line in loss_plot(described.history):
            click.echo(line)
    else:
        click.echo(
            "no training curves: the model file is not in a run directory with metrics.jsonl"
        )


def _stdout_console():
    """A rich Console on stdout; rich itself decides on colour (a terminal or not,
    NO_COLOR, FORCE_COLOR)."""
    from rich.console import Console

    return Console(highlight=False)


def _colored(console) -> bool:
    return console.color_system is not None and not console.no_color


def _positions(analysis, at_position) -> list[int]:
    if at_position is None:
        return list(range(len(analysis.text)))
    if at_position >= len(analysis.text):
        raise click.BadParameter(
            f"position {at_position} is past the end of a text of {len(analysis.text)} "
            "scored character(s)",
            param_hint="--at",
        )
    return [at_position]


def _score_summary(result) -> list[tuple[str, str]]:
    if not result.chars:
        return [("characters scored", "0")]
    return [
        ("characters scored", f"{result.chars:,}"),
        ("bits/char", f"{result.bits_per_char:.4f}"),
        ("nats/char", f"{result.nats_per_char:.4f}"),
        ("perplexity", f"{result.perplexity:.3f}"),
        ("unknown characters skipped", str(result.unknown_chars)),
    ]


def _print_details(analyses, labels, positions, show, top) -> None:
    from .render_terminal import score_line, surprisal_heatmap, surprisal_legend, top_table

    console = _stdout_console()
    color = _colored(console)
    for analysis, label, where in zip(analyses, labels, positions):
        if len(analyses) > 1:
            click.echo(f"== {label}")
        if show:
            _print_colored(console, color, surprisal_heatmap(analysis, color))
            click.echo(score_line(analysis))
        if top:
            console.print(top_table(_trim_top(analysis, top), where))
    if show:
        _print_colored(console, color, surprisal_legend(color))
    click.echo()


def _trim_top(analysis, top):
    return dataclasses.replace(
        analysis,
        top_chars=[row[:top] for row in analysis.top_chars],
        top_probs=analysis.top_probs[:, :top],
    )


def _print_colored(console, color, renderable) -> None:
    if color:
        console.print(renderable, soft_wrap=True)
    else:
        click.echo(renderable)


def _write_html(path, html: str) -> None:
    from .atomic import atomic_write_bytes

    atomic_write_bytes(path, html.encode("utf-8"))
    _stderr(f"wrote {path}")


def main():
    cli(prog_name="charrnn")


if __name__ == "__main__":
    main()
