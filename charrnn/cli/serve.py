"""`charrnn serve`: the models over HTTP (OpenAI-compatible completions, scoring, a web
page), by charrnn.serve."""

from __future__ import annotations

import click

from ..serve.schema import Limits
from .base import cli, echo_err

DEFAULTS = Limits()


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
@click.option(
    "--max-batch",
    type=click.IntRange(1),
    default=DEFAULTS.max_batch,
    show_default=True,
    help="Samples advanced together in one decoder step.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(0),
    default=DEFAULTS.max_queue,
    show_default=True,
    help="Requests that may wait for room in the batch; beyond them: 503.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1),
    default=DEFAULTS.max_tokens,
    show_default=True,
    help="The largest max_tokens (characters) a request may ask.",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=DEFAULTS.threads,
    show_default=True,
    help="BLAS threads for each batched step (more help only while cores are idle).",
)
def serve(models, host, port, api_key, max_batch, max_queue, max_tokens, threads):
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
    limits = Limits(
        max_batch=max_batch, max_queue=max_queue, max_tokens=max_tokens, threads=threads
    )

    def ready(server, port):
        shown = f"[{host}]" if ":" in host else host
        echo_err(f"charrnn serve: http://{shown}:{port}/ (Ctrl-C stops)")

    run(list(models), host, port, limits, api_key, ready)
