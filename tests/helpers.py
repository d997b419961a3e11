"""Small shared pieces for the tests (importable because tests/ has no __init__.py)."""

from charrnn.train import Reporter

# `charrnn train` options for a model that trains in a blink.
TINY_TRAIN = [
    "--hidden",
    "16",
    "--embedding",
    "4",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--max-time",
    "0",
    "--max-steps",
    "8",
]


class FaultCollector(Reporter):
    """A training reporter that keeps the fault and warning messages."""

    def __init__(self):
        self.messages = []

    def on_fault(self, message):
        self.messages.append(message)


class WritesMarker:
    """A pickle payload: unpickling it creates the file `marker` (it must never happen)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))
