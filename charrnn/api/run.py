"""Making a model: prepare a corpus; start, resume or extend a training run.

`train` and `resume` do everything in one call. A caller that handles signals or
several processes itself (the CLI) takes the steps one by one:

    with charrnn.api.runtime(device="auto") as rt:      # under torchrun: the group
        trainer = charrnn.api.start("notes.txt", runtime=rt, max_time=60)
        result = trainer.run(should_stop=lambda: stop_requested)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DataConfig, RuntimeConfig, TrainConfig
from ..errors import CharRNNError
from .settings import training_settings

if TYPE_CHECKING:
    from ..text.corpus import PreparedCorpus
    from ..training.runtime import Runtime
    from ..training.trainer import Reporter, Trainer, TrainResult

# What a resume may change: the budget, patience, plateaus and samples (TrainConfig's
# RESUMABLE), and where and in what precision it computes; the rest is the run's own.
RESUMABLE = (*TrainConfig.RESUMABLE, "device", "precision")


def decided_defaults() -> dict[str, str]:
    """The settings whose default `train` decides from the text or the model
    fine-tuned, each with its rule in words (training.policy)."""
    from ..training.policy import decided_defaults as rules

    return rules()


def runtime(device: str = RuntimeConfig.device, precision: str = RuntimeConfig.precision):
    """A context manager giving the Runtime to train with (the device, the precision
    and, under torchrun, the process group), left at the end of the block
    (training.runtime.running)."""
    from ..training.runtime import running

    return running(RuntimeConfig(device, precision))


def start(
    corpus: str | Path | None = None,
    out: str | Path | None = None,
    *,
    runtime: Runtime,
    force: bool = False,
    init_from: str | Path | None = None,
    reporter: Reporter | None = None,
    progress: Callable[[int], None] | None = None,
    **settings,
) -> Trainer:
    """The run `train` would train, ready in its directory: `.run(should_stop)` trains
    it. Arguments as for `train`; `progress(n)` hears of the bytes preprocessing reads
    (preprocess_bytes in all). Under torchrun only rank 0 reports."""
    from ..training.session import start_run

    main = runtime.group.is_main
    return start_run(
        corpus,
        out,
        runtime=runtime,
        force=force,
        reporter=reporter if main else None,
        progress=progress if main else None,
        init_from=init_from,
        **training_settings(settings, finetune=init_from is not None),
    )


def open_run(
    run_dir: str | Path, *, runtime: Runtime, reporter: Reporter | None = None, **changes
) -> Trainer:
    """The run in `run_dir`, at its newest training state: `.run(should_stop)` goes on
    with it. `changes` as for `resume` (device and precision are the runtime's)."""
    from ..training.session import resume_run

    refused = sorted(set(changes) - set(TrainConfig.RESUMABLE))
    if refused:
        raise CharRNNError(
            f"a resume takes the run's settings from its directory; {refused[0]!r} cannot "
            f"change (these can: {', '.join(RESUMABLE)})"
        )
    reporter = reporter if runtime.group.is_main else None
    return resume_run(run_dir, runtime=runtime, reporter=reporter, **changes)


def train(
    corpus: str | Path | None = None,
    out: str | Path | None = None,
    *,
    force: bool = False,
    reporter: Reporter | None = None,
    init_from: str | Path | None = None,
    device: str = RuntimeConfig.device,
    precision: str = RuntimeConfig.precision,
    **settings,
) -> TrainResult:
    """Train a model on `corpus` (a text file or a prepared directory; None: the bundled
    Shakespeare) into the run directory `out` (default runs/<corpus name>), as
    `charrnn train` does, and return the TrainResult (`.best_model`, `.out_dir`, ...).

    `settings` are fields of DataConfig, ModelConfig and TrainConfig (hidden=256,
    max_time=60, grad_clip=1.0, ...), with the command line's names (--grad-clip).
    What is not given is decided as `charrnn train` decides it: the size from the
    budget, a text short for the model gets dropout and patience, a long run dropout
    and a larger batch (training.policy). An earlier run in `out` is
    an error unless `force` (which deletes it). `reporter` (a training.trainer.Reporter)
    hears of progress; by default nothing is printed.

    `init_from` (a model file, a run directory, or "shakespeare" for the bundled model)
    fine-tunes that model: its architecture (model settings must agree with it), the
    union of its and the corpus's characters, and fine-tuning's defaults for the
    learning rate, warm-up and dropout where they are not given.
    """
    with runtime(device, precision) as rt:
        return start(
            corpus, out, runtime=rt, force=force, init_from=init_from, reporter=reporter,
            **settings,
        ).run()  # fmt: skip


def resume(
    run_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    device: str = RuntimeConfig.device,
    precision: str = RuntimeConfig.precision,
    **changes,
) -> TrainResult:
    """Continue the run in `run_dir` from its newest training state to the end of its
    budget (on the CPU, exactly as if it had not stopped); a finished run returns its
    result as it stands (`stop_reason` says why it stopped).

    `precision` "auto" continues in the precision the run trained in where this
    machine has it (float32 otherwise, with a note: training.precision).
    `changes` are TrainConfig.RESUMABLE settings: `max_time` and/or `max_steps`
    extend the run by that many more seconds / steps (a new learning-rate warm-up
    and cosine, see training.session.resume_run); `patience`, `lr_drops`, `sample_chars`
    replace the run's.
    """
    with runtime(device, precision) as rt:
        return open_run(run_dir, runtime=rt, reporter=reporter, **changes).run()


def preprocess(
    corpus: str | Path,
    out: str | Path | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    **settings,
) -> PreparedCorpus:
    """Encode `corpus` into a prepared directory (`out`, default CORPUS.charrnn beside
    it) that `train` reads directly; `settings` are DataConfig's fields. The result's
    `warnings` say what is worth knowing about a text that is still usable."""
    from ..text.corpus import default_prepared_dir
    from ..text.corpus import preprocess as encode

    out = Path(out) if out else default_prepared_dir(corpus)
    return encode(corpus, out, DataConfig(**settings), progress)


def preprocess_bytes(corpus: str | Path | None = None, val_file: str | None = None) -> int:
    """The bytes that preparing `corpus` (None: the bundled one) and `val_file` reads:
    what `progress` of `start` and `preprocess` counts up to."""
    from ..text.corpus import bytes_to_read

    return bytes_to_read(corpus, val_file)
