"""Where the bundled Shakespeare corpus and pretrained model live.

In a wheel they sit inside the package (charrnn/_data); in a source checkout
or an editable install they are the repository's data/ directory.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CharRNNError

_PACKAGE = Path(__file__).resolve().parent
CORPUS_NAME = "shakespeare.txt"
MODEL_NAME = "shakespeare.safetensors"


def data_dir() -> Path:
    for candidate in (_PACKAGE / "_data", _PACKAGE.parent / "data"):
        if (candidate / CORPUS_NAME).is_file():
            return candidate
    raise CharRNNError("the bundled data directory is missing; reinstall charrnn")


def bundled_corpus() -> Path:
    return data_dir() / CORPUS_NAME


def bundled_model() -> Path:
    path = data_dir() / MODEL_NAME
    if not path.is_file():
        raise CharRNNError("the bundled model is missing; pass --model PATH")
    return path
