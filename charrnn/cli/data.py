"""`charrnn preprocess`."""

from __future__ import annotations

from pathlib import Path

import click

from .base import (
    DATA_OPTIONS,
    ByteProgress,
    apply_options,
    cli,
    data_config_from,
    warn_about_corpus,
)


@cli.command()
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Output directory [default: CORPUS.charrnn beside the corpus].",
)
@apply_options(DATA_OPTIONS)
def preprocess(corpus, out, **options):
    """Encode CORPUS into a compact id array plus vocabulary, for `charrnn train`.

    Optional: train does this itself when needed and reuses the output
    (CORPUS.charrnn) when it is up to date.
    """
    from ..text.corpus import default_prepared_dir
    from ..text.corpus import preprocess as run_preprocess

    out = Path(out) if out else default_prepared_dir(corpus)
    with ByteProgress([corpus, options["val_file"]]) as progress:
        prepared = run_preprocess(corpus, out, data_config_from(options), progress)
    warn_about_corpus(prepared)
    click.echo(
        f"{out}: {prepared.meta['chars']} characters ({len(prepared.train)} train, "
        f"{len(prepared.val)} validation), vocabulary of {len(prepared.vocab)}"
    )
