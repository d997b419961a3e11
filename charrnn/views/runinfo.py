"""What a model file or run directory holds, as `charrnn info` shows it: its config,
training facts and the run's validation history, given (training/rundir.py's
read_run reads them). No files, no printing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..bundled import corpus_description
from ..config import ModelConfig
from ..model.layout import clusters, parameter_count
from ..model.modelfile import LoadedModel
from .figures import nats_and_bits, share_text


@dataclass
class RunInfo:
    """A model and its run's history, for tables and JSON: RunInfo(*read_run(path)),
    the fields of training.rundir.RunRecord."""

    loaded: LoadedModel
    metrics_path: Path | None  # the run's metrics log, where one was found
    history: list[dict]  # one record per validation: step, train_loss, val_loss, ...
    warnings: list[str] = field(default_factory=list)  # damaged lines skipped in the log

    @property
    def best_val_nats(self) -> float | None:
        losses = [r["val_loss"] for r in self.history if r.get("val_loss") is not None]
        if losses:
            return min(losses)
        return self.loaded.info.get("val_nats")

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs describing the model and its training, for tables."""
        config, info = self.loaded.config, self.loaded.info
        rows = [
            ("model file", str(self.loaded.path)),
            ("cell", f"{config.cell}, {config.layers} layer(s) x {config.hidden} units"),
            ("embedding", str(config.embedding)),
            ("dropout", f"{config.dropout:g}"),
            ("vocabulary", f"{len(self.loaded.vocab)} characters"),
            ("output", output_layer(config)),
            ("parameters", f"{parameter_count(self.loaded.config):,}"),
        ]
        if "step" in info:
            rows.append(("trained for", f"{info['step']:,} steps"))
        if "chars_seen" in info:
            rows.append(("characters seen", f"{info['chars_seen']:,}"))
        if "val_nats" in info:
            rows.append(("this model's validation", nats_and_bits(info["val_nats"])))
        best = self.best_val_nats
        if best is not None:
            rows.append(("best validation", nats_and_bits(best)))
        gradients = self.gradient_summary()
        if gradients is not None:
            rows += gradient_rows(gradients)
        train_config = info.get("train_config") or {}
        if train_config:
            keys = ("seq_len", "batch_size", "lr", "max_time", "max_steps", "seed")
            keys += ("patience",) * bool(train_config.get("patience"))
            rows.append(
                ("training", ", ".join(f"{k}={train_config[k]}" for k in keys if k in train_config))
            )
        runtime = info.get("runtime") or {}
        if runtime:
            rows.append(("computed on", computed_on(runtime, self.history)))
        if info.get("corpus"):
            rows.append(("corpus", corpus_description(info["corpus"])))
        if info.get("init_from"):
            rows.append(("initialised from", init_record(info["init_from"])))
        if info.get("adapted"):
            rows.append(("then adapted to", adapted_record(info["adapted"])))
        rows.append(("metrics log", str(self.metrics_path) if self.metrics_path else "none found"))
        return rows

    def to_dict(self) -> dict:
        return {
            "model": str(self.loaded.path),
            "config": self.loaded.config.to_dict(),
            "vocab_size": len(self.loaded.vocab),
            "parameters": parameter_count(self.loaded.config),
            "info": self.loaded.info,
            "best_val_nats": self.best_val_nats,
            "metrics": str(self.metrics_path) if self.metrics_path else None,
            "history": self.history,
            "gradients": self.gradient_summary(),
        }

    def gradient_summary(self) -> dict | None:
        """The gradient norms of the whole log: steps counted, their mean and largest
        norm before clipping, the clipping threshold and the share of steps clipped.
        None for a log without them (a run from before they were recorded)."""
        records = [r for r in self.history if all(_number(r.get(k)) for k in GRADIENT_KEYS)]
        steps = sum(r["grad_steps"] for r in records)
        if not steps:
            return None

        def weighted(key: str) -> float:
            return sum(r[key] * r["grad_steps"] for r in records) / steps

        return {
            "steps": steps,
            "norm_mean": weighted("grad_norm_mean"),
            "norm_max": max(r["grad_norm_max"] for r in records),
            "clip": (self.loaded.info.get("train_config") or {}).get("grad_clip"),
            "clipped_share": weighted("clipped_share"),
        }


GRADIENT_KEYS = ("grad_norm_mean", "grad_norm_max", "clipped_share", "grad_steps")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def gradient_rows(summary: dict) -> list[tuple[str, str]]:
    """A gradient_summary as (label, value) rows."""
    clip = summary["clip"]
    threshold = ""
    if _number(clip):
        threshold = " (no clipping)" if math.isinf(clip) else f" (above {clip:g})"
    norms = f"mean {summary['norm_mean']:.3g}, largest {summary['norm_max']:.3g}"
    return [
        ("gradient norm", f"{norms} (before clipping)"),
        (
            "clipped steps",
            f"{share_text(summary['clipped_share'])} of {summary['steps']:,}{threshold}",
        ),
    ]


def computed_on(runtime: dict, history: list[dict]) -> str:
    """The device and precision the model file was trained on, in words, and the
    precisions of the whole run where a resume changed it ("bf16 to step 40, then
    fp32"), from the validation records."""
    precision = runtime.get("precision_reason") or runtime.get("precision")
    words = f"{runtime.get('device')}, {precision}"
    spans: list[list] = []  # [precision, last step]
    for record in history:
        precision = record.get("precision")
        if precision is None:
            continue
        if spans and spans[-1][0] == precision:
            spans[-1][1] = record["step"]
        else:
            spans.append([precision, record["step"]])
    if len(spans) < 2:
        return words
    parts = [f"{precision} to step {step:,}" for precision, step in spans[:-1]]
    return f"{words}; the run: {', then '.join(parts)}, then {spans[-1][0]}"


def adapted_record(adapted: dict) -> str:
    """What `sample --adapt-to ... --save-adapted` read, and how well it predicted it
    (each part only when the file records it as expected)."""
    chars, nats = adapted.get("chars"), adapted.get("nats_per_char")
    settings = adapted.get("settings")
    words = str(adapted.get("text") or "a text")
    if isinstance(chars, int):
        words += f", {chars:,} characters"
    if isinstance(nats, float):
        words += f" at {nats:.4f} nats/char"
    if isinstance(settings, dict):
        words += f" (rate {settings.get('adapt_rate')}, segment {settings.get('adapt_segment')})"
    return words


def init_record(record: dict) -> str:
    """The model a run started from, in words: its file, the start of its sha256, and
    what it records of its own training."""
    own = [
        f"{label} {value}"
        for label, value in (
            ("trained on", record.get("corpus") and corpus_description(record["corpus"])),
            ("for", f"{record['step']:,} steps" if "step" in record else None),
        )
        if value
    ]
    return (
        f"{record.get('path')} (sha256 {str(record.get('sha256'))[:16]}…"
        + "".join(f"; {part}" for part in own)
        + ")"
    )


def output_layer(config: ModelConfig) -> str:
    """The output layer in words: "softmax over 84 characters", or "adaptive softmax:
    head 337 + clusters of 1348, 1016 characters (projections 96, 24)"."""
    if config.output != "adaptive":
        return f"softmax over {config.vocab_size} characters"
    sizes, widths = zip(*clusters(config))
    listed = lambda values: ", ".join(map(str, values))  # noqa: E731
    return (
        f"adaptive softmax: head {config.cutoffs[0]} + clusters of {listed(sizes)} "
        f"characters (projections {listed(widths)})"
    )
