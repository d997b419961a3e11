"""Starting and resuming a training run, as `charrnn train` does and Python callers can.

`start_run` claims the run directory, prepares the corpus and decides what the
caller left open (the run directory, the corpus, the dropout), from scratch or from
a trained model (`init_from`, initfrom.py); `resume_run` continues the newest
state of a run, or extends it with a new budget; `train` starts one and runs it.
What can fail is checked before any note or warning goes to the reporter.
Both lock the run directory before they look at it (RunDir.attempt): one process
writes a run, and an attempt that fails leaves nothing it made behind. The Trainer
releases the lock when its run ends.
Under torchrun every process calls these; rank 0 locks, writes and reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from ..bundled import bundled_corpus
from ..config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig
from ..errors import CharRNNError
from ..model.layout import frequency_order, memorising_parameter_count, resolve_output
from ..text.corpus import PreparedCorpus, corpus_warnings, prepare
from . import checkpoint
from .initfrom import (
    InitModel,
    carried_weights,
    check_architecture,
    fine_tuned_config,
    load_init_model,
)
from .policy import (
    BATCH_SIZE,
    EXTENSION_PEAK_RATIO,
    FINETUNE_DROPOUT,
    default_batch_size,
    default_dropout,
    default_lr_drops,
    default_patience,
    fine_tune_dropout,
    is_small_text,
    size_advice,
    train_config,
)
from .rundir import RunDir
from .runtime import Runtime, start_runtime
from .schedule import PLATEAU_FACTOR, stop_description
from .sizing import SizeChoice, choose_size
from .smalltext import start_from_model_advice
from .trainer import Reporter, Trainer

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
    settings: dict | None,
    prepared: PreparedCorpus,
    sized: Callable[[ModelConfig], SizeChoice] | None = None,
) -> tuple[ModelConfig, str | None, float | None]:
    """The ModelConfig for `prepared` from `settings` (ModelConfig fields but vocab_size),
    its output layer decided from the training text (layout.resolve_output), its size
    by `sized` when the settings give neither hidden nor layers (sizing.choose_size);
    a note on what was decided here (the size; the dropout, policy.default_dropout,
    when not given); and the characters the sized run plans to read (None when the
    size was given)."""
    settings = dict(settings or {})
    _check_model_settings(settings)
    given = settings.pop("dropout", None)
    config = ModelConfig(vocab_size=len(prepared.vocab), **settings)
    config = resolve_output(config, symbol_counts(prepared))
    notes = []
    planned = None
    if sized is not None and "hidden" not in settings and "layers" not in settings:
        choice = sized(config)  # from the resolved config: its output layer is kept
        config, planned = choice.config, choice.budget_chars
        notes.append(choice.note)
    train_chars = len(prepared.train)
    config = replace(
        config,
        dropout=given if given is not None else default_dropout(config, train_chars, planned),
    )
    if given is None and config.dropout:
        why = (
            f"the model has {memorising_parameter_count(config):,} recurrent parameters for "
            f"{train_chars:,} training characters"
            if is_small_text(config, train_chars)
            else f"the run plans to read the text {planned / train_chars:.1f} times"
        )
        notes.append(f"dropout {config.dropout}: {why} (--dropout sets it)")
    return config, "; ".join(notes) or None, planned


def batch_size_for(
    train: TrainConfig, planned_chars: float | None
) -> tuple[TrainConfig, str | None]:
    """`train` with its batch size decided when not given (policy.default_batch_size),
    and a note when a long run's was."""
    if train.batch_size is not None:
        return train, None
    batch = default_batch_size(planned_chars, timed=bool(train.max_time))
    note = None
    if batch != BATCH_SIZE:
        note = (
            f"batch {batch}: a long run, {planned_chars / 1e6:.1f}M characters planned "
            "(--batch-size sets it)"
        )
    return replace(train, batch_size=batch), note


def _check_model_settings(settings: dict) -> None:
    unknown = sorted(set(settings) - set(MODEL_SETTINGS))
    if unknown:
        raise CharRNNError(
            f"unknown model setting(s) {', '.join(unknown)}; known: {', '.join(MODEL_SETTINGS)}"
        )


def fine_tuned_model_config(
    source: InitModel, settings: dict | None, prepared: PreparedCorpus
) -> tuple[ModelConfig, str]:
    """The ModelConfig of a run starting from `source` on `prepared` (whose vocabulary
    holds the model's): the model's architecture, the dropout of `settings` or
    FINETUNE_DROPOUT; and a note on what the run starts from."""
    settings = dict(settings or {})
    dropout = settings.get("dropout")
    config = fine_tuned_config(source, prepared.vocab, fine_tune_dropout(dropout))
    added = [c for c in prepared.vocab.chars if c not in source.loaded.vocab]
    shown = ", ".join(repr(c) for c in added[:10]) + (" ..." if len(added) > 10 else "")
    note = f"starting from {source.path} ({source.describe()})" + (
        f"; the corpus adds {len(added)} character(s): {shown}" if added else ""
    )
    if dropout is None:
        note += f"; dropout {FINETUNE_DROPOUT}, the fine-tuning default (--dropout sets it)"
    return config, note


def _patience_for(
    train: TrainConfig, config: ModelConfig, train_chars: int
) -> tuple[TrainConfig, str | None]:
    """`train` with its patience and learning-rate drops decided when not given
    (policy.default_patience, default_lr_drops), and a note when early stopping was
    decided here."""
    if train.lr_drops is None:
        train = replace(train, lr_drops=default_lr_drops(config, train_chars))
    if train.patience is not None:
        return train, None
    patience = default_patience(config, train_chars)
    if not patience:
        return replace(train, patience=0), None
    drops = train.lr_drops
    plateau = (
        f"goes back to the best model with the learning rate x{PLATEAU_FACTOR:g} "
        f"({drops} time(s), --lr-drops), after that it "
        if drops
        else ""
    )
    note = (
        f"patience {patience}: after {patience} validations in a row without "
        f"improvement training {plateau}stops, as the text is small for the model "
        "(--patience 0: never)"
    )
    return replace(train, patience=patience), note


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
    init_from: str | Path | None = None,
) -> Trainer:
    """A Trainer for a new run on `corpus` (a text file or a prepared directory; the
    bundled Shakespeare text when None) in `out` (default runs/<corpus name>).

    `init_from` (a model file, a run directory or a bundled model's short name) starts
    from that model's weights: its architecture (settings in `model` must agree with
    it), the vocabulary union (old characters keep their rows: initfrom.carried_weights),
    dropout FINETUNE_DROPOUT unless given, and `train` None means the fine-tuning
    defaults (policy.train_config). Its model files and states record the model.

    `data` and `train` default to their configs' defaults; `model` holds
    ModelConfig settings but vocab_size; a dropout that is missing or
    None is policy.default_dropout's (SMALL_TEXT_DROPOUT for a text short for the
    model's recurrent layers, REPEATED_TEXT_DROPOUT for a sized run that reads the
    text again and again, else 0), a `train.batch_size` of None
    policy.default_batch_size's, and a `train.patience` of None
    policy.default_patience's (SMALL_TEXT_PATIENCE for such a text). An old run
    in `out` is refused, or with `force` deleted.
    `runtime` is a started Runtime, or the RuntimeConfig to start one from (None:
    the defaults, as `charrnn train`; under torchrun, `trainer.runtime.close()` at
    the end leaves the process group). `progress(n)` hears of bytes preprocessed.
    """
    data = data or DataConfig()
    train = train or train_config({}, finetune=bool(init_from))
    _check_model_settings(model or {})
    source = None
    if init_from is not None:
        # Read before the run directory is claimed: a bad model must cost nothing, and
        # `--force` may delete the very file it names.
        source = load_init_model(init_from)
        check_architecture(source, model or {})
    runtime = _runtime(runtime)
    group = runtime.group
    reporter = reporter or Reporter()
    corpus = Path(corpus) if corpus else bundled_corpus()
    rundir = RunDir(out if out else default_run_dir(corpus))
    # Rank 0 holds the directory's lock before its look at it counts. An attempt that
    # fails leaves nothing it made behind (RunDir.attempt): the corpus is read, and the
    # model built, before the old run (with `force`) is deleted, last.
    with rundir.attempt(take_lock=group.is_main):
        rundir.check_unclaimed(force)
        group.barrier()  # every rank has looked at the run directory before rank 0 changes it
        # Starting from a model, the vocabulary holds the model's too.
        base = source.loaded.vocab if source else None
        prepared = _prepared(corpus, rundir, data, progress, base, group)
        planned = None
        if source is None:
            config, note, planned = model_config_for(
                model,
                prepared,
                lambda base: choose_size(
                    base, train, runtime, prepared.train, output_order(base, prepared)
                ),
            )
            order = output_order(config, prepared)
        else:
            config, note = fine_tuned_model_config(source, model, prepared)
            order = None  # an adaptive head's comes with the carried weights
        train, patience_note = _patience_for(train, config, len(prepared.train))
        train, batch_note = batch_size_for(train, planned)
        trainer = Trainer(prepared, config, train, rundir, reporter, runtime, order=order)
        if source is not None:
            trainer.model.load_state_dict(carried_weights(source, prepared.vocab))
            trainer.info["init_from"] = source.record()
        if group.is_main:
            rundir.claim(force)
    # Everything that can fail has been built; now the advice.
    if group.is_main:
        notes = (note, batch_note, patience_note)
        _advise(reporter, trainer, fine_tuned=source is not None, notes=notes)
    return trainer


def _prepared(corpus, rundir, data, progress, base_vocab, group) -> PreparedCorpus:
    """The run's prepared corpus: rank 0 encodes it (when needed), the others then
    reuse what it wrote."""
    prepared = None
    if group.is_main:
        prepared = prepare(corpus, rundir.data_dir, data, progress, base_vocab)
    group.barrier()
    if prepared is None:
        prepared = prepare(corpus, rundir.data_dir, data, base_vocab=base_vocab)
    return prepared


def _advise(reporter: Reporter, trainer: Trainer, fine_tuned: bool, notes) -> None:
    """What a new run's user is told before it trains: the corpus's warnings, the
    `notes` of the decided settings, and advice for a small text."""
    prepared, config = trainer.corpus, trainer.model_config
    for warning in corpus_warnings(prepared):
        reporter.on_warning(warning)
    for message in notes:
        if message:
            reporter.on_note(message)
    # The advice is to change --hidden: not an option when the model fixes it, and
    # not needed while dropout or early stopping keeps the model from memorising
    # (with them, 1x256 did worse than the default 1x384 on 6 of 7 small texts:
    # BENCHMARKS.md, "Small texts").
    guarded = config.dropout > 0 or trainer.config.patience
    advice = size_advice(config, len(prepared.train)) if not (fine_tuned or guarded) else None
    if advice:
        reporter.on_warning(advice)
    if not fine_tuned and is_small_text(config, len(prepared.train)):
        reporter.on_note(start_from_model_advice(prepared.vocab.chars, symbol_counts(prepared)))


def resume_run(
    run_dir: str | Path,
    *,
    runtime: Runtime | RuntimeConfig | None = None,
    reporter: Reporter | None = None,
    max_time: float | None = None,
    max_steps: int | None = None,
    patience: int | None = None,
    lr_drops: int | None = None,
    sample_chars: int | None = None,
    peak_ratio: float = EXTENSION_PEAK_RATIO,
) -> Trainer:
    """A Trainer continuing the newest complete state in `run_dir`, with the settings it
    was started with; the logs lose their records of steps after that state.
    `runtime` as for start_run: the device and precision may differ from the run's
    (a precision of auto keeps the run's own where the device has it:
    precision.resumed_precision).

    Without `max_time` and `max_steps` the run goes on to the end of its budget, as
    if it had not stopped (a finished run has nothing left: `trainer.stop_reason`).
    With either, the run is extended: that many more seconds and/or steps from the
    state (whichever ends first; the one not given is no limit), with a new
    warm-up and a cosine from lr * `peak_ratio` to lr * final_lr_ratio, and a fresh
    patience count. `patience`, `lr_drops` and `sample_chars`, when given, replace the run's.
    """
    budget = {"max_time": max_time, "max_steps": max_steps}
    extend = any(value is not None for value in budget.values())
    changes = {"patience": patience, "lr_drops": lr_drops, "sample_chars": sample_chars}
    changes = {k: v for k, v in changes.items() if v is not None}
    if extend:
        changes.update({k: v or 0 for k, v in budget.items()})
    runtime = _runtime(runtime)
    reporter = reporter or Reporter()
    rundir = RunDir(run_dir)
    # Rank 0 holds the lock from before its first look (a directory that is not there
    # has no run to resume, and is not made: the error below says so).
    with rundir.attempt(take_lock=runtime.group.is_main and rundir.path.is_dir()):
        skipped: list[str] = []
        state = rundir.latest_state(skipped)
        if state is None:
            reason = f" ({skipped[0]})" if skipped else ""
            raise CharRNNError(f"{rundir.path}: no training state to resume from{reason}")
        meta = state.meta
        rundir.check_own(state)
        corpus = checkpoint.prepared_corpus(state)  # the same data, or one error line
        config = replace(TrainConfig(**meta["train_config"]), **changes)
        precision_note = runtime.resume_in((meta.get("runtime") or {}).get("precision"))
        trainer = Trainer(
            corpus, ModelConfig(**meta["model_config"]), config, rundir, reporter, runtime
        )
        trainer.load(state)  # the weights, and an adaptive head's order with them
        if meta.get("init_from"):
            trainer.info["init_from"] = meta["init_from"]
        if extend:
            trainer.extend(peak_ratio)
        for message in skipped:
            reporter.on_fault(f"skipped a damaged training state: {message}")
        if precision_note and runtime.group.is_main:
            reporter.on_note(precision_note)
        for message in rundir.damaged_logs():
            reporter.on_warning(message)
        step = trainer.loop.step
        if runtime.group.is_main:
            rundir.cut_logs(step)  # they go on from the state's step
        trainer.history = [r for r in rundir.metrics() if r["step"] <= step]
    if trainer.stop_reason is not None and runtime.group.is_main:
        # Nothing left to do is not an error: a script that resumes until the run is
        # done may call once more.
        why = stop_description(trainer.stop_reason, config.patience)
        reporter.on_note(
            f"{rundir.path}: the run is finished at step {step:,} (stopped by {why}; best "
            f"validation at step {trainer.loop.best_step:,}); nothing left to do. To train "
            f"it further: charrnn train --resume {rundir.path} --max-time SECONDS (or "
            "--max-steps N), that much more from where it stopped"
        )
    return trainer
