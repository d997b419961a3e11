"""The `charrnn` command line: parses options and delegates to the library.

Results go to stdout; progress bars, tables and warnings go to stderr.
Library errors (CharRNNError) become one line `Error: ...` and exit code 1.

One module per group of commands (data: preprocess; training: train;
generation: sample, score; views: inspect, info; serve), on the group and shared
options in `base`. Importing torch costs a second, so commands import the
library lazily: `charrnn --help` and usage errors stay instant.
"""

from __future__ import annotations

from . import (
    data,  # noqa: F401  (each registers its commands)
    generation,  # noqa: F401  (each registers its commands)
    serve,  # noqa: F401  (each registers its commands)
    training,  # noqa: F401  (each registers its commands)
    views,  # noqa: F401  (each registers its commands)
)
from .base import cli


def main():
    cli(prog_name="charrnn")
