"""What the charrnn commands share: the group, common options, output helpers."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import click

from ..config import (
    DataConfig,
)
from ..errors import CharRNNError


def default_of(cls, name: str):
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


def echo_err(message: str) -> None:
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
        default=default_of(DataConfig, "val_fraction"),
        show_default=True,
        help="Fraction at the end of the corpus used for validation, cut at a line.",
    ),
    click.option(
        "--encoding",
        default=default_of(DataConfig, "encoding"),
        show_default=True,
        help="Text encoding of the corpus files.",
    ),
    click.option(
        "--errors",
        type=click.Choice(["strict", "replace"]),
        default=default_of(DataConfig, "errors"),
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
        default=default_of(DataConfig, "normalize"),
        show_default=True,
        help="Put text in Unicode NFC form (here, and again when sampling and scoring).",
    ),
]
DATA_OPTION_NAMES = ("val_file", "val_fraction", "encoding", "errors", "keep_newlines", "normalize")


def data_config_from(options: dict) -> DataConfig:
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


def warn_about_corpus(prepared) -> None:
    controls = prepared.meta.get("control_chars", 0)
    if controls:
        echo_err(
            f"warning: the corpus holds {controls} control character(s) "
            "(other than tab, newline, carriage return and form feed)"
        )


def apply_options(options):
    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


# --------------------------------------------------------------------------- sample / score
def html_option(help_text: str):
    """`--html FILE` (into `html_file`): the self-contained page a command can also write."""
    return click.option("--html", "html_file", type=click.Path(dir_okay=False), help=help_text)


MODEL_OPTION = click.option(
    "--model",
    "model_path",
    type=click.Path(),
    help="Model file or run directory [default: the bundled Shakespeare model].",
)


def load_model_arg(model_path):
    from ..bundled import bundled_model
    from ..model.modelfile import load_model

    return load_model(model_path or bundled_model())


def stdout_console():
    """A rich Console on stdout; rich itself decides on colour (a terminal or not,
    NO_COLOR, FORCE_COLOR)."""
    from rich.console import Console

    return Console(highlight=False)


def is_colored(console) -> bool:
    return console.color_system is not None and not console.no_color


def print_colored(console, color, renderable) -> None:
    if color:
        console.print(renderable, soft_wrap=True)
    else:
        click.echo(renderable)


def write_html(path, html: str) -> None:
    from ..atomic import atomic_write_bytes

    atomic_write_bytes(path, html.encode("utf-8"))
    echo_err(f"wrote {path}")
