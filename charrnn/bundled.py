"""Where the bundled Shakespeare corpus and pretrained model live.

In a wheel they sit inside the package (charrnn/_data); in a source checkout
or an editable install they are the repository's data/ directory. So a file that
names the bundled corpus (a model's "corpus", a prepared corpus's sources) names
it by a marker, `bundled:shakespeare.txt`, true on every install, and readers
find it with corpus_path; an absolute path would hold only on the machine that
wrote it.
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
BUNDLED_MARK = "bundled:"  # a recorded corpus that starts so is a bundled file


def data_dir() -> Path:
    """The directory of the bundled corpus and model on this install."""
    for candidate in (_PACKAGE / "_data", _PACKAGE.parent / "data"):
        if (candidate / CORPUS_NAME).is_file():
            return candidate
    raise CharRNNError("the bundled data directory is missing; reinstall charrnn")


def bundled_corpus() -> Path:
    """The bundled Shakespeare text, which `charrnn train` reads without a CORPUS."""
    return data_dir() / CORPUS_NAME


def bundled_model() -> Path:
    """The bundled pretrained model, the default of every command that takes -m."""
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


def corpus_record(path: str | Path) -> str:
    """How a file records the corpus at `path`: the bundled corpus as its marker
    (bundled:shakespeare.txt), any other as its absolute path."""
    path = Path(path).resolve()
    return BUNDLED_MARK + CORPUS_NAME if _is_bundled_corpus(path) else str(path)


def corpus_path(record: str) -> str:
    """Where the corpus a file records (corpus_record) is on this install: the bundled
    corpus's marker resolved to data_dir(); any other record as it is."""
    if is_bundled_record(record):
        return str(bundled_corpus())
    return record


def is_bundled_record(record: str | None) -> bool:
    """True for the bundled corpus's marker. Only the bundled corpus's own name counts:
    a marker from a stranger's file never names another path."""
    return record == BUNDLED_MARK + CORPUS_NAME


def corpus_description(record: str) -> str:
    """A recorded corpus for people: the bundled one as its path on this install and
    "(bundled)"; any other record as it is."""
    if not is_bundled_record(record):
        return record
    try:
        return f"{bundled_corpus()} (bundled)"
    except CharRNNError:
        return f"{CORPUS_NAME} (bundled, missing from this install)"


def _is_bundled_corpus(path: Path) -> bool:
    try:
        return path == bundled_corpus().resolve()
    except CharRNNError:  # no bundled data here: nothing is the bundled corpus
        return False
