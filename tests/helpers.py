"""Small shared pieces for the tests (importable because tests/ has no __init__.py)."""

import pytest

from charrnn.training.precision import cpu_bfloat16
from charrnn.training.trainer import Reporter

# bf16 training of the LSTM runs only on a CPU with native bfloat16 (oneDNN refuses
# it elsewhere); the tests of that path skip on other CPUs.
NEEDS_NATIVE_BF16 = pytest.mark.skipif(
    not cpu_bfloat16().native, reason=f"this CPU has no native bfloat16: {cpu_bfloat16().evidence}"
)

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


def ok(result):
    """A CliRunner result that succeeded (the output and exception say why not)."""
    assert result.exit_code == 0, result.output + str(result.exception)
    assert result.exception is None, result.exception
    return result


def no_traceback(result):
    """A CliRunner result that ended by a clean exit. CliRunner keeps an uncaught
    exception in `result.exception` instead of printing its traceback, so the output
    never shows one: what the user would have seen is an exception other than SystemExit."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def fails(result, message, code=1):
    """A CliRunner result that failed cleanly: the exit code, the message on stderr,
    no traceback."""
    assert result.exit_code == code, result.output
    assert message in result.stderr
    no_traceback(result)
    return result


def tiny_train_args(corpus, run, *extra: str) -> list[str]:
    """`charrnn train CORPUS --out RUN -q` with the tiny model; later options win."""
    return ["train", str(corpus), "--out", str(run), "-q", *TINY_TRAIN, *extra]


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
