"""`charrnn train`: options -> api.start / api.open_run, and the run; progress on
stderr, signals, the summary on stdout."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time

import click

from .. import api
from ..config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig
from ..errors import PeerStopped, TrainingInterrupted
from .base import ByteProgress, cli, echo_err
from .options import config_options


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
            ("stopped by", result.stopped_by),
            ("best model", str(result.best_model)),
            ("last model", str(result.last_model)),
        ]:
            table.add_row(key, value)
        Console(stderr=True).print(table)


# Settings whose default the library decides: unset on the command line, their rule in --help.
DECIDED = {name: (None, f" [default: {rule}]") for name, rule in api.decided_defaults().items()}


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
@config_options(ModelConfig, overrides=DECIDED)
@config_options(TrainConfig, overrides=DECIDED)
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
    if resume_dir and init_from:
        raise click.UsageError("--resume continues a run, --init-from starts one: drop one")
    # The settings given; what is not given the library decides (from the text, or the
    # model fine-tuned), as it does for a Python caller.
    given = {
        name: value
        for name, value in options.items()
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
    }
    if resume_dir:
        _check_resume_options(corpus, out, force, given)
    reporter = ProgressReporter(quiet)
    try:
        with api.runtime(device, precision) as runtime:
            if resume_dir:
                trainer = api.open_run(resume_dir, runtime=runtime, reporter=reporter, **given)
            else:
                # The bar counts the bytes of both passes over the sources (rank 0's).
                total = api.preprocess_bytes(corpus, given.get("val_file"))
                with ByteProgress(total, disable=not runtime.group.is_main) as progress:
                    trainer = api.start(
                        corpus, out, runtime=runtime, force=force, init_from=init_from,
                        reporter=reporter, progress=progress, **given,
                    )  # fmt: skip
            main, distributed = runtime.group.is_main, runtime.group.distributed
            result = _run_with_signals(trainer, trainer.run_dir, main)
            del trainer  # the run (and its DistributedDataParallel) goes before the group
    except PeerStopped as stopped:
        # The process that failed says why in its own line; this one stopped with it,
        # and says so in one line rather than with the collective's traceback.
        echo_err(f"rank {os.environ.get('RANK', '0')}: {stopped}")
        sys.exit(1)
    if as_json and main:
        click.echo(json.dumps(result.to_dict()))
    if distributed:
        # Everything is written and the process group left. About 1 in 100 torchrun
        # workers still aborted in the interpreter's teardown after a complete run
        # ("terminate called without an active exception", no Python frame: a C++
        # thread of the distributed backend destroyed while joinable), failing the
        # launch; a worker that is done leaves without that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _check_resume_options(corpus, out, force, given) -> None:
    """A resume takes the run's settings from its directory: only api.RESUMABLE ones
    (a new budget, patience, samples; the device and precision) may be given."""
    refused = [name for name in given if name not in api.RESUMABLE]
    if corpus or out or force or refused:
        flags = ", ".join(
            ["CORPUS"] * bool(corpus)
            + ["--out"] * bool(out)
            + ["--force"] * force
            + [f"--{n.replace('_', '-')}" for n in refused]
        )
        allowed = ", ".join(f"--{n.replace('_', '-')}" for n in api.RESUMABLE)
        raise click.UsageError(
            f"--resume takes the run's settings from the run directory; drop {flags} "
            f"(a resume accepts only {allowed})"
        )


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
