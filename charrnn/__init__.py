"""charrnn: character-level RNN, LSTM and GRU language models.

    import charrnn
    m = charrnn.load()                      # the bundled Shakespeare model
    print(m.sample("ROMEO.", length=200, temperature=0.8, seed=1))
    print(m.score(["a sentence", "another"]))
    result = charrnn.train("notes.txt", out="runs/notes", max_time=60)

Importing the package is cheap: the names below are looked up on first use,
and torch is imported only by what needs it (see charrnn/api.py).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load": "charrnn.api",
    "train": "charrnn.api",
    "resume": "charrnn.api",
    "Model": "charrnn.api",
    "DataConfig": "charrnn.config",
    "ModelConfig": "charrnn.config",
    "TrainConfig": "charrnn.config",
    "RuntimeConfig": "charrnn.config",
    "SampleConfig": "charrnn.config",
    "CharRNNError": "charrnn.errors",
    "ModelFileError": "charrnn.errors",
    "CorpusError": "charrnn.errors",
    "UnknownCharactersError": "charrnn.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
