"""Settings given as Python keywords, checked against their declarations (config.py)
before anything runs: an unknown name or a value of the wrong kind is one clear
CharRNNError, as a bad option is on the command line."""

from __future__ import annotations

import dataclasses
import secrets

from ..config import AdaptConfig, DataConfig, ModelConfig, SampleConfig, TrainConfig
from ..errors import CharRNNError

KIND_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "True or False"}


def _fits(value, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def checked(cls, settings: dict, what: str) -> dict:
    """`settings` (field name -> value) for the dataclass `cls`; an unknown name, or a
    value that is not of the field's kind (None only where that is the default), is a
    CharRNNError naming `what` settings they are."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in settings.items():
        if name not in fields:
            raise CharRNNError(
                f"unknown {what} setting {name!r}; choose from {', '.join(sorted(fields))}"
            )
        f = fields[name]
        kind = f.metadata.get("kind") or type(f.default)
        if value is None and f.default is None:
            continue
        if kind in KIND_WORDS and not _fits(value, kind):
            raise CharRNNError(f"{name} must be {KIND_WORDS[kind]}, not {value!r}")
    return settings


def sample_settings(**settings) -> SampleConfig:
    """SampleConfig from keyword settings, checked; without a seed, a fresh one."""
    checked(SampleConfig, settings, "sampling")
    if settings.get("seed") is None:
        settings["seed"] = secrets.randbelow(2**31)
    return SampleConfig(**settings)


def adapt_settings(adapt: bool = True, **settings) -> AdaptConfig | None:
    """AdaptConfig from keyword settings (adapt_rate, adapt_segment, ...), checked, its
    rate decided (inference.adapt.resolved); None when not `adapt`, where a setting
    given is an error (it would do nothing)."""
    checked(AdaptConfig, settings, "adaptation")
    if not adapt:
        if settings:
            raise CharRNNError(f"{next(iter(settings))} goes with adapt=True")
        return None
    from ..inference.adapt import resolved

    return resolved(AdaptConfig(**settings))


TRAINING_SETTINGS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def training_settings(settings: dict, finetune: bool) -> dict:
    """Flat keyword settings -> the DataConfig, the model settings given (the rest is
    decided from the corpus, or is the fine-tuned model's) and the TrainConfig
    (training.policy.train_config: fine-tuning's defaults with `finetune`)."""
    from ..training.policy import train_config

    owner = {
        f.name: group
        for group, cls in TRAINING_SETTINGS.items()
        for f in dataclasses.fields(cls)
        if f.name != "vocab_size"
    }
    unknown = sorted(set(settings) - set(owner))
    if unknown:
        raise CharRNNError(
            f"unknown training setting {unknown[0]!r}; choose from {', '.join(sorted(owner))}"
        )
    parts: dict[str, dict] = {group: {} for group in TRAINING_SETTINGS}
    for name, value in settings.items():
        parts[owner[name]][name] = value
    for group, cls in TRAINING_SETTINGS.items():
        checked(cls, parts[group], "training")
    return {
        "data": DataConfig(**parts["data"]),
        "model": parts["model"],
        "train": train_config(parts["train"], finetune),
    }
