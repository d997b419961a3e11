"""Training-state files: everything needed to continue a run exactly where it stopped.

One safetensors file per state (`RUN/state/step-00001234.safetensors`):
tensors for the weights, the optimizer moments, the carried hidden state and
the torch/numpy RNG states; JSON metadata for the configs, the vocabulary,
the loop's bookkeeping, the optimizer's settings and the Python RNG state.
Nothing is pickled, and files are written atomically (see atomic.py).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..atomic import atomic_write_bytes
from ..errors import CharRNNError, ModelFileError
from ..model.modelfile import read_metadata

FORMAT = "charrnn-train-state"
VERSION = 1
STATE_DIR = "state"  # RUN/state: training states
MODELS_DIR = "models"  # RUN/models: model files named by step and validation loss
_NAME = re.compile(r"^step-(\d+)\.safetensors$")


@dataclass
class TrainingState:
    """A decoded state file. `meta` holds the JSON parts, `tensors` the rest."""

    meta: dict
    tensors: dict[str, torch.Tensor]
    path: Path | None = None

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors whose names start with `prefix.`, with the prefix removed."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}


def capture_rng() -> tuple[dict, dict[str, torch.Tensor]]:
    """Every RNG state: (JSON part, tensor part)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
    }
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
    }
    return meta, tensors


def restore_rng(state: TrainingState) -> None:
    version, internal, gauss = state.meta["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, pos, has_gauss, cached = state.meta["rng"]["numpy"]
    keys = state.tensors["rng.numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    torch.set_rng_state(state.tensors["rng.torch"])


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[list, dict]:
    """(param_groups as JSON, per-parameter state as named tensors)."""
    state_dict = optimizer.state_dict()
    tensors = {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu()
    return state_dict["param_groups"], tensors


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, state: TrainingState) -> None:
    per_param: dict[int, dict] = {}
    for name, value in state.group("optim").items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value.clone()
    optimizer.load_state_dict({"state": per_param, "param_groups": state.meta["optim_groups"]})


def save_state(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Write a state file atomically; refuse non-finite weights."""
    for name, value in tensors.items():
        if name.startswith("model.") and not torch.isfinite(value).all():
            raise CharRNNError(f"refusing to save a state with non-finite weights ({name})")
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "state": json.dumps(meta, ensure_ascii=False),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def load_state(path: Path) -> TrainingState:
    """Read one state file; any damage is a ModelFileError with one line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror})") from None
    metadata = read_metadata(data, path, FORMAT, VERSION)
    try:
        meta = json.loads(metadata["state"])
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error type on bad data
        raise ModelFileError(f"{path}: damaged training state ({exc})") from None
    return TrainingState(meta, tensors, path)


def state_path(run_dir: Path, step: int) -> Path:
    return run_dir / STATE_DIR / f"step-{step:08d}.safetensors"


def list_states(run_dir: Path) -> list[Path]:
    """State files of a run, newest (highest step) first."""
    folder = Path(run_dir) / STATE_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def latest_state(run_dir: Path, skipped: list[str] | None = None) -> TrainingState | None:
    """The newest state that loads. Damaged files (charrnn never leaves one, but a disk
    or a person can) are passed over, their errors appended to `skipped`."""
    for path in list_states(run_dir):
        try:
            return load_state(path)
        except ModelFileError as exc:
            if skipped is not None:
                skipped.append(str(exc))
    return None


def prune_states(run_dir: Path, keep: int) -> None:
    """Delete all but the `keep` newest states."""
    for path in list_states(run_dir)[max(keep, 1) :]:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(run_dir: Path) -> int:
    """Delete temporary files left by a writer that was killed; return how many."""
    count = 0
    for folder in (Path(run_dir), Path(run_dir) / STATE_DIR, Path(run_dir) / MODELS_DIR):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                count += 1
    return count
