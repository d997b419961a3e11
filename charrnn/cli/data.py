"""`charrnn preprocess`."""

from __future__ import annotations

from pathlib import Path

import click

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
    from ..text.corpus import corpus_warnings, default_prepared_dir
    from ..text.corpus import preprocess as run_preprocess

    out = Path(out) if out else default_prepared_dir(corpus)
    data_config = config_from(DataConfig, options)
    with ByteProgress([corpus, data_config.val_file]) as progress:
        prepared = run_preprocess(corpus, out, data_config, progress)
    for warning in corpus_warnings(prepared):
        echo_err(f"warning: {warning}")
    click.echo(
        f"{out}: {prepared.meta['chars']} characters ({len(prepared.train)} train, "
        f"{len(prepared.val)} validation), vocabulary of {len(prepared.vocab)}"
    )
