"""The Python front door, and the only one the CLI uses: load a model and sample,
score or look inside it; prepare a corpus; train, extend or resume a run.

    import charrnn
    m = charrnn.load()                          # the bundled Shakespeare model
    print(m.sample("ROMEO.", length=200, temperature=0.8, seed=1))
    print(m.score("To be, or not to be").bits_per_char)
    result = charrnn.train("notes.txt", out="runs/notes", max_time=60, hidden=256)
    m = charrnn.load(result.out_dir)

`model` holds what works on a trained model, `run` what makes one. Loading and
sampling run in numpy; torch is imported only by what needs it (scoring,
analysis, training), so importing this package stays cheap.
"""

from .files import read_text, save_text
from .model import Model, compare_gradients, describe, load, total
from .run import (
    RESUMABLE,
    decided_defaults,
    open_run,
    preprocess,
    preprocess_bytes,
    resume,
    runtime,
    start,
    train,
)
from .settings import adapt_settings, sample_settings

__all__ = [
    "RESUMABLE",
    "Model",
    "adapt_settings",
    "compare_gradients",
    "decided_defaults",
    "describe",
    "load",
    "open_run",
    "preprocess",
    "preprocess_bytes",
    "read_text",
    "resume",
    "runtime",
    "sample_settings",
    "save_text",
    "start",
    "total",
    "train",
]
