"""Training states: capturing everything needed to continue a run exactly where it
stopped, restoring it, and encoding it as a file.

One safetensors file per state (its place in the run: rundir.py):
tensors for the weights, the optimizer moments, the carried hidden state and
the torch/numpy RNG states; JSON metadata for the configs, the vocabulary,
the loop's bookkeeping, the optimizer's settings and the Python RNG state.
Nothing is pickled, and files are written atomically (see atomic.py).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..atomic import atomic_write_bytes
from ..errors import CharRNNError, ModelFileError
from ..model.modelfile import read_metadata
from ..model.network import select_state

if TYPE_CHECKING:
    from .runtime import ProcessGroup

FORMAT = "charrnn-train-state"
# Version 2: the model config has `output` and `cutoffs`, and an adaptive head's
# `model.head.order`. Version 1 states (a full softmax) still resume.
VERSION = 2
READABLE = (1, 2)


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


def capture(
    meta: dict,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    hidden,
    group: ProcessGroup,
    device: torch.device,
) -> tuple[dict, dict[str, torch.Tensor]]:
    """(JSON metadata, named tensors) of a complete training state: `meta` (the run's
    own JSON: configs, loop bookkeeping, ...) plus the weights, optimizer, gradient
    scaler, RNGs and the carried recurrent state `hidden`.

    Under DDP every rank must call it (it gathers): the carried state of all ranks,
    joined in the one-process layout (L, B, H), and each rank's RNGs.
    """
    rng_meta, rng_tensors = capture_rng()
    groups, optim_tensors = optimizer_to_tensors(optimizer)
    meta = {**meta, "optim_groups": groups, "rng": rng_meta}
    if scaler.is_enabled():
        meta["grad_scaler"] = scaler.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(optim_tensors)
    tensors.update(rng_tensors)
    for rank, value in enumerate(group.gather(torch.get_rng_state())[1:], start=1):
        tensors[f"rng.torch.rank{rank}"] = value
    if device.type == "cuda":
        for rank, value in enumerate(group.gather(torch.cuda.get_rng_state())):
            tensors[f"rng.cuda.rank{rank}"] = value
    if hidden is not None:
        parts = hidden if isinstance(hidden, tuple) else (hidden,)
        for i, h in enumerate(parts):
            # float32 whatever the autocast dtype, so any precision can resume it
            tensors[f"hidden.{i}"] = torch.cat(group.gather(h.float()), dim=1)
    return meta, tensors


def restore(
    state: TrainingState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    group: ProcessGroup,
    device: torch.device,
    rows: slice,
    seed: int,
):
    """Put `state` back into the model, optimizer, scaler and RNGs; return this rank's
    carried recurrent state (on `device`; None at the start of an epoch).

    The state may come from another number of processes: the carried state is
    stored for all B streams, and each rank takes its `rows`.
    """
    rank = group.rank
    model.load_state_dict(state.group("model"))
    optimizer_from_tensors(optimizer, state)
    if scaler.is_enabled() and "grad_scaler" in state.meta:
        scaler.load_state_dict(state.meta["grad_scaler"])
    restore_rng(state)
    if rank > 0:
        own = state.tensors.get(f"rng.torch.rank{rank}")
        if own is not None:
            torch.set_rng_state(own)
        else:  # a state from fewer processes: fresh dropout masks for this rank
            torch.manual_seed(seed + rank + 7919 * state.meta["loop"]["step"])
    cuda_rng = state.tensors.get(f"rng.cuda.rank{rank}")
    if device.type == "cuda" and cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng)
    stored = [state.tensors[f"hidden.{i}"] for i in range(2) if f"hidden.{i}" in state.tensors]
    if not stored:
        return None
    full = tuple(stored) if len(stored) == 2 else stored[0]
    if group.distributed:
        full = select_state(full, rows)
    parts = full if isinstance(full, tuple) else (full,)
    parts = tuple(h.to(device).contiguous() for h in parts)
    return parts if len(parts) == 2 else parts[0]


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
    metadata = read_metadata(data, path, FORMAT, READABLE)
    try:
        meta = json.loads(metadata["state"])
        if metadata["version"] == "1" and "model_config" in meta:
            meta["model_config"].setdefault("output", "softmax")  # always a full softmax
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error type on bad data
        raise ModelFileError(f"{path}: damaged training state ({exc})") from None
    return TrainingState(meta, tensors, path)
