"""`charrnn serve`: the models over HTTP (OpenAI-compatible completions, scoring, a web
page), by charrnn.serve."""

from __future__ import annotations

import click

from ..serve.schema import Limits
from .base import cli, echo_err
from .options import config_from, config_options


@cli.command()
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    metavar="[NAME=]PATH",
    help="A model file or run directory to serve, named NAME or after the file (repeat for "
    "several) [default: the bundled model, as shakespeare].",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="The port to listen on.",
)
@click.option(
    "--api-key",
    default=None,
    envvar="CHARRNN_API_KEY",
    help="Require 'Authorization: Bearer KEY' on /v1/ [default: none; also $CHARRNN_API_KEY].",
)
@config_options(Limits)
def serve(models, host, port, api_key, **options):
    """Serve models over HTTP until Ctrl-C or SIGTERM: OpenAI-compatible POST
    /v1/completions and GET /v1/models, POST /v1/score, GET /v1/models/NAME (what
    `charrnn info` shows), and a web page at / to write and score with a model.

    Listens on loopback only unless --host says otherwise. One line per request on
    stderr.
    """
    from ..serve.app import is_loopback
    from ..serve.app import serve as run

    if not is_loopback(host) and not api_key:
        echo_err(
            f"warning: serving on {host} without authentication: anyone who can reach it can "
            "use the models (--api-key sets a key)"
        )
    limits = config_from(Limits, options)

    def ready(server, port):
        shown = f"[{host}]" if ":" in host else host
        echo_err(f"charrnn serve: http://{shown}:{port}/ (Ctrl-C stops)")

    run(list(models), host, port, limits, api_key, ready)
