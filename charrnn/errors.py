"""The CharRNNError family: every failure a user can cause, each with a one-line message.

The CLI turns these into `Error: <message>` on stderr and exit code 1.
"""


class CharRNNError(Exception):
    """Base class for errors caused by user input (files, options, text)."""


class CorpusError(CharRNNError):
    """The corpus cannot be read or is unusable for training."""


class ModelFileError(CharRNNError):
    """A model file is missing, corrupt, unsafe or of an unknown version."""


class UnknownCharactersError(CharRNNError):
    """Text holds characters that the model's vocabulary does not have."""

    def __init__(self, chars: list[str], where: str = "text"):
        self.chars = chars
        shown = ", ".join(repr(c) for c in chars[:10]) + (" ..." if len(chars) > 10 else "")
        super().__init__(f"{where} has {len(chars)} character(s) the model has never seen: {shown}")


class PeerStopped(CharRNNError):
    """Under torchrun: a collective failed because another process of the run failed or
    was killed (that process says why in its own error)."""


class TrainingInterrupted(Exception):
    """Training stopped on request (a signal) after saving a complete state. Not a
    CharRNNError: nothing is wrong, and the run continues with `--resume`."""

    def __init__(self, step: int, run_dir):
        self.step, self.run_dir = step, run_dir
        super().__init__(f"stopped at step {step}; state saved in {run_dir}")
