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
# Short names that stand for a bundled model wherever a model path is taken
# (`--model shakespeare`, `--init-from shakespeare`) and no such file exists.
MODEL_NAMES = {"shakespeare": MODEL_NAME}


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


def bundled_model_named(name: str) -> Path | None:
    """The bundled model a short name (MODEL_NAMES) stands for; None for any other name."""
    file_name = MODEL_NAMES.get(name)
    if file_name is None:
        return None
    path = data_dir() / file_name
    return path if path.is_file() else None
