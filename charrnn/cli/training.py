"""`charrnn train`: options -> configs -> start_run / resume_run (training/session.py);
progress on stderr, signals, the summary on stdout."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time

import click

from ..bundled import bundled_corpus
from ..config import (
    FINETUNE_DROPOUT,
    FINETUNE_TRAIN_DEFAULTS,
    SMALL_TEXT_CHARS_PER_PARAMETER,
    SMALL_TEXT_DROPOUT,
    DataConfig,
    ModelConfig,
    RuntimeConfig,
    TrainConfig,
    train_config,
)
from .base import ByteProgress, cli, echo_err
from .options import config_from, config_options, field_names


# --------------------------------------------------------------------------- train
class ProgressReporter:
    """tqdm bar on stderr while training; a rich table at the end."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.smoothed = None
        self.patience = 0

    def on_start(self, info):
        from tqdm import tqdm

        self.patience = info["train_config"]["patience"]
        if not self.quiet:
            echo_err(
                f"training {info['model_config']['cell']} "
                f"{info['model_config']['layers']}x{info['model_config']['hidden']} "
                f"({info['parameters']:,} parameters) on {info['train_chars']:,} characters, "
                f"validating on {info['val_chars']:,}"
                + (f"; resuming at step {info['resumed_at']:,}" if info["resumed_at"] else "")
                + f"; {info['runtime']['device']}, {info['runtime']['precision_reason']}"
            )
        self.bar = tqdm(
            total=1000,
            unit="",
            file=sys.stderr,
            disable=self.quiet or None,
            bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
        )

    def _write(self, line):
        # tqdm.write keeps any bar on screen (the training bar, or preprocessing's) whole.
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)

    def on_fault(self, message):
        self._write(f"warning: {message}")

    def on_warning(self, message):
        self._write(f"warning: {message}")

    def on_note(self, message):
        if not self.quiet:
            self._write(f"note: {message}")

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
            self._write(line)
            if "sample" in record:
                from ..views.terminal import sample_lines

                for text in sample_lines(record["sample"]):
                    self._write(f"  {text}")

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
                f"{result.best_val_nats:.4f} nats/char, {result.best_val_bpc:.4f} bits/char "
                f"(step {result.best_step:,})",
            ),
            ("stopped by", stop_description(result.stop_reason, self.patience)),
            ("best model", str(result.best_model)),
            ("last model", str(result.last_model)),
        ]:
            table.add_row(key, value)
        Console(stderr=True).print(table)


@cli.command()
@click.argument("corpus", type=click.Path(), required=False)
@config_options(DataConfig)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Run directory for best/last model files [default: runs/<corpus name>].",
)
@click.option("--force", is_flag=True, help="Overwrite models already in the run directory.")
@click.option(
    "--init-from",
    "init_from",
    metavar="MODEL",
    type=click.Path(),
    help="Start from this model's weights (a model file, a run directory, or a bundled "
    "model's name: shakespeare): its architecture, the union of its and the corpus's "
    "characters, and the fine-tuning defaults of --lr, --warmup-steps and --dropout.",
)
@config_options(
    ModelConfig,
    overrides={
        "dropout": (
            None,
            f" [default: 0, or {SMALL_TEXT_DROPOUT} when the training text has fewer than "
            f"{SMALL_TEXT_CHARS_PER_PARAMETER} characters per recurrent parameter; "
            f"{FINETUNE_DROPOUT} with --init-from]",
        )
    },
)
@config_options(
    TrainConfig,
    overrides={
        name: (
            None,
            f" [default: {getattr(TrainConfig, name)}; {value} with --init-from]",
        )
        for name, value in FINETUNE_TRAIN_DEFAULTS.items()
    },
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    help="Continue the run in this directory exactly where it stopped; with --max-time "
    "and/or --max-steps, extend it (finished or not) by that much more.",
)
@config_options(RuntimeConfig)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output on stderr.")
@click.pass_context
def train(
    ctx, corpus, out, force, init_from, resume_dir, device, precision, as_json, quiet, **options
):
    """Train a model on CORPUS (a text file or a preprocessed directory).

    Without CORPUS, trains on the bundled Shakespeare text. Writes
    best.safetensors and last.safetensors into the run directory, and the
    complete training state into RUN/state, so that `--resume RUN` continues
    exactly, and `--resume RUN --max-time S` extends a run by S seconds.
    Ctrl-C (or SIGTERM) saves a state and stops; a second Ctrl-C stops at once.

    `--init-from MODEL` fine-tunes MODEL (e.g. the bundled `shakespeare`) on
    CORPUS: the architecture is the model's, new characters get fresh rows.

    Under `torchrun --nproc_per_node N -m charrnn train ...` the N processes
    train one model with DistributedDataParallel, each on batch-size/N streams.
    """
    from ..training.runtime import lost_peer, start_runtime

    if resume_dir and init_from:
        raise click.UsageError("--resume continues a run, --init-from starts one: drop one")
    changes = _resume_changes(ctx, corpus, out, force, options) if resume_dir else {}
    if init_from:  # the model's architecture stands wherever an option was not given
        for name in field_names(ModelConfig):
            if ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT:
                options[name] = None
    runtime = start_runtime(RuntimeConfig(device, precision))
    try:
        result = _train(corpus, out, force, resume_dir, changes, quiet, options, runtime, init_from)
        # Every rank has finished its last collective before any leaves the group: a rank
        # that left early closed gloo's connections under a slower one (SIGABRT, seen once
        # in five runs of tests/test_distributed.py). Only after success: after an error
        # the other ranks may never arrive.
        runtime.group.barrier()
    except RuntimeError as error:
        gone = lost_peer(error) if runtime.group.distributed else None
        if gone is None:
            raise
        # The process that failed says why in its own line; this one stopped with it,
        # and says so in one line rather than with the collective's traceback.
        echo_err(f"rank {runtime.group.rank}: stopped, as another process of the run did ({gone})")
        sys.exit(1)
    finally:
        runtime.close()
    if as_json and runtime.group.is_main:
        click.echo(json.dumps(result.to_dict()))


def _resume_changes(ctx, corpus, out, force, options) -> dict:
    """The settings given with --resume, which must be TrainConfig.RESUMABLE ones (a new
    budget, patience, samples); the others are the run's own."""
    given = [
        name
        for name in options
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
    ]
    refused = [name for name in given if name not in TrainConfig.RESUMABLE]
    if corpus or out or force or refused:
        flags = ", ".join(
            ["CORPUS"] * bool(corpus)
            + ["--out"] * bool(out)
            + ["--force"] * force
            + [f"--{n.replace('_', '-')}" for n in refused]
        )
        allowed = ", ".join(f"--{n.replace('_', '-')}" for n in TrainConfig.RESUMABLE)
        raise click.UsageError(
            f"--resume takes the run's settings from the run directory; drop {flags} "
            f"(a resume accepts only {allowed})"
        )
    return {name: options[name] for name in given}


def _train(corpus, out, force, resume_dir, changes, quiet, options, runtime, init_from=None):
    from ..training.session import resume_run, start_run
    from ..training.trainer import Reporter

    main_process = runtime.group.is_main
    # Only rank 0 reports; the others' warnings would repeat its own.
    reporter = ProgressReporter(quiet) if main_process else Reporter()
    if resume_dir:
        trainer = resume_run(resume_dir, runtime=runtime, reporter=reporter, **changes)
        if trainer.stop_reason is not None:
            # Nothing left to do is not an error: a script that resumes until the run
            # is done may call once more.
            if main_process and not quiet:
                echo_err(_finished_note(trainer, resume_dir))
            return trainer.run()
    else:
        data = config_from(DataConfig, options)
        model = {n: options[n] for n in field_names(ModelConfig) if options[n] is not None}
        settings = {name: options[name] for name in field_names(TrainConfig)}
        # The bar's total is the bytes of both passes over the sources (rank 0 reads them).
        sources = [corpus or bundled_corpus(), data.val_file]
        bar = ByteProgress(sources) if main_process else contextlib.nullcontext()
        with bar as progress:
            trainer = start_run(
                corpus,
                out,
                data=data,
                model=model,
                train=train_config(settings, finetune=bool(init_from)),
                runtime=runtime,
                force=force,
                reporter=reporter,
                progress=progress,
                init_from=init_from,
            )
    return _run_with_signals(trainer, trainer.run_dir, main_process)


def _finished_note(trainer, run_dir) -> str:
    loop = trainer.loop
    why = stop_description(trainer.stop_reason, trainer.config.patience)
    return (
        f"{run_dir}: the run is finished at step {loop.step:,} (stopped by {why}; best "
        f"validation at step {loop.best_step:,}); nothing left to do. "
        f"To train it further: charrnn train --resume {run_dir} --max-time SECONDS "
        "(or --max-steps N), that much more from where it stopped"
    )


def stop_description(reason: str, patience: int) -> str:
    """Why training stopped (schedule.STOP_REASONS), in words."""
    if reason == "patience":
        return f"patience ({patience} validations without improvement)"
    return {"steps": "the step budget", "time": "the time budget"}[reason]


EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


# A terminal's Ctrl-C reaches a worker twice where the launcher leaves its workers in the
# terminal's process group: from the terminal, and forwarded by the launcher (torch
# 2.13's torchrun starts them in sessions of their own: once). A repeat this soon after
# the first is the same request.
SAME_REQUEST_SECONDS = 2.0


def _run_with_signals(trainer, run_dir, main_process=True):
    """Run training; the first SIGINT/SIGTERM stops it after the current step with a
    saved state (exit 130/143), a second SIGINT interrupts at once. Under torchrun
    every process gets the signal; rank 0's decides for all, and rank 0 reports."""
    from ..training.trainer import TrainingInterrupted

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
            echo_err(
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
            echo_err(
                f"stopped at step {stop.step}; continue with: charrnn train --resume {run_dir}"
            )
        # A rank other than 0 may not have seen the signal itself.
        sys.exit(EXIT_CODES[received[0]] if received else 130)
    except KeyboardInterrupt:
        stopped = True
        if main_process:
            echo_err(
                f"interrupted; the last complete state in {run_dir} is intact: "
                f"charrnn train --resume {run_dir}"
            )
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            # Exiting after a stop, a late Ctrl-C must not put a traceback into the shutdown.
            signal.signal(sig, signal.SIG_IGN if stopped else handler)
