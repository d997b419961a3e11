"""Starting and resuming a training run, as `charrnn train` does and Python callers can.

`start_run` claims the run directory, prepares the corpus and decides what the
caller left open (the run directory, the corpus, the dropout); `resume_run`
continues the newest state of a run; `train` starts one and runs it. What can
fail is checked before any note or warning goes to the reporter.
Under torchrun every process calls these; rank 0 writes and reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from ..bundled import bundled_corpus
from ..config import (
    DataConfig,
    ModelConfig,
    RuntimeConfig,
    TrainConfig,
    default_dropout,
    frequency_order,
    memorising_parameter_count,
    size_advice,
)
from ..errors import CharRNNError
from ..text.corpus import PreparedCorpus, corpus_warnings, prepare
from . import checkpoint
from .rundir import RunDir
from .runtime import Runtime, start_runtime
from .trainer import Reporter, Trainer, TrainResult

MODEL_SETTINGS = tuple(f.name for f in fields(ModelConfig) if f.name != "vocab_size")


def default_run_dir(corpus: str | Path) -> Path:
    """runs/<corpus name up to its first dot>: runs/shakespeare for shakespeare.txt."""
    return Path("runs") / Path(corpus).name.split(".")[0]


def symbol_counts(prepared: PreparedCorpus) -> list[int]:
    """How often each vocabulary id occurs in the training text."""
    return np.bincount(prepared.train, minlength=len(prepared.vocab)).tolist()


def output_order(config: ModelConfig, prepared: PreparedCorpus) -> list[int] | None:
    """The frequency order (rank -> id) an adaptive output layer is built with; None
    for a softmax."""
    return frequency_order(symbol_counts(prepared)) if config.output == "adaptive" else None


def model_config_for(
    settings: dict | None, prepared: PreparedCorpus
) -> tuple[ModelConfig, str | None]:
    """The ModelConfig for `prepared` from `settings` (ModelConfig fields but vocab_size),
    its output layer decided from the training text (ModelConfig.resolved), and a note
    when the dropout was decided here (default_dropout) rather than given."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(MODEL_SETTINGS))
    if unknown:
        raise CharRNNError(
            f"unknown model setting(s) {', '.join(unknown)}; known: {', '.join(MODEL_SETTINGS)}"
        )
    given = settings.pop("dropout", None)
    config = ModelConfig(vocab_size=len(prepared.vocab), **settings)
    config = config.resolved(symbol_counts(prepared))
    if given is not None:
        return replace(config, dropout=given), None
    train_chars = len(prepared.train)
    config = replace(config, dropout=default_dropout(config, train_chars))
    if not config.dropout:
        return config, None
    return config, (
        f"dropout {config.dropout}: the model has {memorising_parameter_count(config):,} "
        f"recurrent parameters for {train_chars:,} training characters (--dropout sets it)"
    )


def _runtime(runtime: Runtime | RuntimeConfig | None) -> Runtime:
    if isinstance(runtime, Runtime):
        return runtime
    return start_runtime(runtime or RuntimeConfig())


def start_run(
    corpus: str | Path | None = None,
    out: str | Path | None = None,
    *,
    data: DataConfig | None = None,
    model: dict | None = None,
    train: TrainConfig | None = None,
    runtime: Runtime | RuntimeConfig | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    progress: Callable[[int], None] | None = None,
) -> Trainer:
    """A Trainer for a new run on `corpus` (a text file or a prepared directory; the
    bundled Shakespeare text when None) in `out` (default runs/<corpus name>).

    `data` and `train` default to their configs' defaults; `model` holds
    ModelConfig settings but vocab_size; a dropout that is missing or
    None is config.default_dropout's (SMALL_TEXT_DROPOUT for a text short for the
    model's recurrent layers, else 0). An old run in `out` is refused, or with `force` deleted.
    `runtime` is a started Runtime, or the RuntimeConfig to start one from (None:
    the defaults, as `charrnn train`; under torchrun, `trainer.runtime.close()` at
    the end leaves the process group). `progress(n)` hears of bytes preprocessed.
    """
    data, train = data or DataConfig(), train or TrainConfig()
    runtime = _runtime(runtime)
    group = runtime.group
    reporter = reporter or Reporter()
    corpus = Path(corpus) if corpus else bundled_corpus()
    rundir = RunDir(out if out else default_run_dir(corpus))
    rundir.check_unclaimed(force)
    group.barrier()  # every rank has looked at the run directory before rank 0 changes it
    # Rank 0 claims the directory and encodes the corpus (when needed); the others then
    # reuse what it wrote.
    prepared = None
    if group.is_main:
        rundir.claim(force)
        prepared = prepare(corpus, rundir.data_dir, data, progress)
    group.barrier()
    if prepared is None:
        prepared = prepare(corpus, rundir.data_dir, data)
    config, note = model_config_for(model, prepared)
    order = output_order(config, prepared)
    trainer = Trainer(prepared, config, train, rundir, reporter, runtime, order=order)
    # Everything that can fail has been built; now the advice.
    if group.is_main:
        for warning in corpus_warnings(prepared):
            reporter.on_warning(warning)
        if note:
            reporter.on_note(note)
        advice = size_advice(config, len(prepared.train))
        if advice:
            reporter.on_warning(advice)
    return trainer


def resume_run(
    run_dir: str | Path,
    *,
    runtime: Runtime | RuntimeConfig | None = None,
    reporter: Reporter | None = None,
) -> Trainer:
    """A Trainer continuing the newest complete state in `run_dir`, with the settings it
    was started with; the logs lose their records of steps after that state.
    `runtime` as for start_run: the device and precision may differ from the run's."""
    runtime = _runtime(runtime)
    reporter = reporter or Reporter()
    rundir = RunDir(run_dir)
    skipped: list[str] = []
    state = rundir.latest_state(skipped)
    if state is None:
        reason = f" ({skipped[0]})" if skipped else ""
        raise CharRNNError(f"{rundir.path}: no training state to resume from{reason}")
    meta = state.meta
    rundir.check_own(state)
    corpus = checkpoint.prepared_corpus(state)  # the same data, or one error line
    trainer = Trainer(
        corpus,
        ModelConfig(**meta["model_config"]),
        TrainConfig(**meta["train_config"]),
        rundir,
        reporter,
        runtime,
    )
    trainer.load(state)  # the weights, and an adaptive head's order with them
    for message in skipped:
        reporter.on_fault(f"skipped a damaged training state: {message}")
    for message in rundir.damaged_logs():
        reporter.on_warning(message)
    step = trainer.loop.step
    if runtime.group.is_main:
        rundir.cut_logs(step)  # they go on from the state's step
    trainer.history = [r for r in rundir.metrics() if r["step"] <= step]
    return trainer


def train(
    corpus: str | Path | None = None,
    out: str | Path | None = None,
    *,
    data: DataConfig | None = None,
    model: dict | None = None,
    train: TrainConfig | None = None,
    runtime: Runtime | RuntimeConfig | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """Start a run (see start_run) and train it to the end of its budget. The best model
    is `result.best_model` (RUN/best.safetensors)."""
    started = not isinstance(runtime, Runtime)
    runtime = _runtime(runtime)
    try:
        trainer = start_run(
            corpus,
            out,
            data=data,
            model=model,
            train=train,
            runtime=runtime,
            force=force,
            reporter=reporter,
            progress=progress,
        )
        return trainer.run(should_stop)
    finally:
        if started:
            runtime.close()
