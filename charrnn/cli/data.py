"""`charrnn preprocess`."""

from __future__ import annotations

import dataclasses

import click

from .. import api
from ..config import DataConfig
from .base import ByteProgress, cli, echo_err
from .options import config_from, config_options


@cli.command()
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Output directory [default: CORPUS.charrnn beside the corpus].",
)
@config_options(DataConfig)
def preprocess(corpus, out, **options):
    """Encode CORPUS into a compact id array plus vocabulary, for `charrnn train`.

    Optional: train does this itself when needed and reuses the output
    (CORPUS.charrnn) when it is up to date.
    """
    settings = config_from(DataConfig, options)
    with ByteProgress(api.preprocess_bytes(corpus, settings.val_file)) as progress:
        prepared = api.preprocess(corpus, out, progress=progress, **dataclasses.asdict(settings))
    for warning in prepared.warnings:
        echo_err(f"warning: {warning}")
    click.echo(
        f"{prepared.directory}: {prepared.meta['chars']} characters ({len(prepared.train)} "
        f"train, {len(prepared.val)} validation), vocabulary of {len(prepared.vocab)}"
    )
