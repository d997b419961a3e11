"""What the charrnn commands share: the group, common options, output helpers."""

from __future__ import annotations

import os
import sys

import click

from .. import api
from ..config import AdaptConfig
from ..errors import CharRNNError
from .options import given_options


def _from_rank(message: str) -> str:
    """Under torchrun, say which process an error line comes from (rank 0's stays plain)."""
    rank = os.environ.get("RANK", "0")
    return message if rank == "0" else f"rank {rank}: {message}"


class CharRNNGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # Ctrl-C while sampling or scoring: keep what was printed, exit as a shell
            # expects after SIGINT (130), without click's "Aborted!".
            _flush_quietly(sys.stdout)
            ctx.exit(130)
        except CharRNNError as exc:
            raise click.ClickException(_from_rank(str(exc))) from None
        except BrokenPipeError:
            # `charrnn sample | head`: the reader left; that is not an error.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except OSError as exc:  # disk full, permission denied, ...
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(_from_rank(f"{where}{exc.strerror or exc}")) from None


def _flush_quietly(stream) -> None:
    try:
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass


@click.group(cls=CharRNNGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="charrnn")
def cli():
    """Character-level RNN / LSTM / GRU language models: train, sample, score."""


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def echo_note(message: str) -> None:
    """A note on stderr (the seed used, a file written), unless the command got --quiet.
    Warnings and errors use echo_err and are never silenced."""
    ctx = click.get_current_context(silent=True)
    if not (ctx and ctx.params.get("quiet")):
        echo_err(message)


QUIET_OPTION = click.option(
    "--quiet", "-q", is_flag=True, help="No notes on stderr (warnings and errors still show)."
)

ESCAPES_HELP = "Escapes: \\n is a newline, \\t a tab, \\\\ a backslash."


def unescape(text: str) -> str:
    """The one escape rule for text given on the command line (sample --prime, score
    TEXTS, inspect TEXT): \\n is a newline, \\t a tab, \\\\ a backslash; any other
    backslash stays as it is. Text read from files or stdin is taken as it is."""
    out, chars = [], iter(text)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "")
        out.append({"n": "\n", "t": "\t", "\\": "\\"}.get(following, "\\" + following))
    return "".join(out)


# --------------------------------------------------------------------------- preprocess
class ByteProgress:
    """A tqdm bar in bytes for preprocessing (api.preprocess_bytes in all)."""

    def __init__(self, total: int, disable: bool = False):
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc="preprocess",
            file=sys.stderr,
            disable=True if disable else None,
            leave=False,
        )

    def __call__(self, count: int) -> None:
        self.bar.update(count)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


# --------------------------------------------------------------------------- sample / score
def html_option(help_text: str):
    """`--html FILE` (into `html_file`): the self-contained page a command can also write."""
    return click.option("--html", "html_file", type=click.Path(dir_okay=False), help=help_text)


MODEL_ENV = "CHARRNN_MODEL"


def model_option(multiple: bool = False, more_help: str = ""):
    """`--model/-m` (into `model_path`, or with `multiple` a tuple `model_paths`): a
    model file or run directory, by default $CHARRNN_MODEL or the bundled model."""
    return click.option(
        "--model",
        "-m",
        "model_paths" if multiple else "model_path",
        type=click.Path(),
        multiple=multiple,
        envvar=MODEL_ENV,
        help=f"Model file or run directory [default: ${MODEL_ENV}, else the bundled "
        f"Shakespeare model]{more_help}.",
    )


MODEL_OPTION = model_option()


def adapt_keywords(options: dict, adapt: bool) -> dict:
    """What `--adapt` and the --adapt-* settings given ask of the API's calls (score,
    analyze, units): adapt=True and those settings, or nothing. The settings are
    removed from `options`; one given without --adapt is a usage error."""
    given = given_options(AdaptConfig, options, "--adapt", adapt)
    return {"adapt": True, **given} if adapt else {}


def load_model_arg(model_path) -> api.Model:
    """The model of --model (None: the bundled one)."""
    return api.load(model_path or None)


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
    api.save_text(path, html)
    echo_note(f"wrote {path}")
