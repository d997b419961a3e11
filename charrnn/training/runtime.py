"""Where training computes: the device, the numeric precision, and the process group.

One process is the default. Under `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR/PORT in the environment) every process joins one torch.distributed
group: gloo on the CPU, nccl on CUDA. `ProcessGroup` holds the few collectives
the training loop needs; with one process they are plain no-ops.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..config import RuntimeConfig
from ..errors import CharRNNError, PeerStopped
from .precision import (
    PRECISION_NAMES,
    Bf16Support,
    PrecisionChoice,
    choose_precision,
    resumed_precision,
)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for `--device NAME`; a one-line error when it is not there."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise CharRNNError(
                "--device cuda: no CUDA device is available "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})"
            )
        if local_rank >= torch.cuda.device_count():
            raise CharRNNError(
                f"process {local_rank} of this machine has no GPU of its own "
                f"({torch.cuda.device_count()} visible); start at most that many processes"
            )
        return torch.device("cuda", local_rank)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise CharRNNError("--device mps: no Apple-silicon GPU (MPS) is available")
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class ProcessGroup:
    """This process's place among the training processes, and the collectives on them.

    `from_main` and `sum` move Python floats; `gather` moves tensors. `device`
    is where collective tensors live (CUDA for nccl, the CPU for gloo).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and reports progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def rows(self, batch_size: int) -> slice:
        """This rank's batch streams: [r*B/W, (r+1)*B/W) of the one-process layout."""
        if batch_size % self.world_size:
            raise CharRNNError(
                f"--batch-size {batch_size} does not split evenly over {self.world_size} "
                f"processes; use a multiple of {self.world_size}"
            )
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def _floats(self, values) -> torch.Tensor:
        return torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)

    def from_main(self, *values: float) -> list[float]:
        """Rank 0's values, on every rank (decisions all ranks must share)."""
        if not self.distributed:
            return list(values)
        tensor = self._floats(values)
        dist.broadcast(tensor, src=0)
        return tensor.tolist()

    def sum(self, *values: float) -> list[float]:
        """The sums of `values` over all ranks."""
        if not self.distributed:
            return list(values)
        tensor = self._floats(values)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's `tensor` (same shape and dtype on all), in rank order, on the CPU."""
        if not self.distributed:
            return [tensor.detach().cpu()]
        local = tensor.detach().to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(parts, local)
        return [part.cpu() for part in parts]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


# What gloo says when the process at the other end of a connection has gone.
PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def lost_peer(error: BaseException) -> str | None:
    """Where `error` is a collective failing because another process of the group
    failed or was killed (the error it met, without gloo's source location); else None."""
    text = str(error).strip()
    if not isinstance(error, dist.DistError) and not any(gone in text for gone in PEER_GONE):
        return None
    first = (text.splitlines() or [type(error).__name__])[0]
    return re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0]


@dataclass
class Runtime:
    """The device, precision and process group of one training process.

    `precision` (fp32, bf16, fp16) is what autocast uses; `choice`, where the
    precision was chosen by start_runtime, says what was asked for and why.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    group: ProcessGroup = field(default_factory=ProcessGroup)
    choice: PrecisionChoice | None = None

    def resume_in(self, recorded: str | None) -> str | None:
        """Set the precision a resumed run continues in (precision.resumed_precision;
        `recorded` is the run's); a note when it is not the run's own."""
        if self.choice is None:  # built by hand: its precision stands
            return None
        self.choice, note = resumed_precision(self.choice, recorded)
        self.precision = self.choice.precision
        return note

    def describe_precision(self) -> str:
        """The precision in words, with the reason when it was not asked for by name."""
        return self.choice.describe() if self.choice else PRECISION_NAMES[self.precision]

    def autocast(self):
        """Mixed-precision region for the forward pass (nothing for fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (whose small gradients underflow); a pass-through otherwise."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to train: under DDP a DistributedDataParallel around `model` (it
        broadcasts rank 0's weights, then averages gradients during backward)."""
        if not self.group.distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def describe(self) -> dict:
        return {
            "device": str(self.device),
            "precision": self.precision,
            "precision_reason": self.describe_precision(),
            "world_size": self.group.world_size,
        }

    def close(self) -> None:
        if self.group.distributed and dist.is_initialized():
            dist.destroy_process_group()


def start_runtime(config: RuntimeConfig | None = None) -> Runtime:
    """Pick the device and precision (precision.choose_precision); join the process
    group when run under torchrun."""
    config = config or RuntimeConfig()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, local_rank if world_size > 1 else 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    choice = choose_precision(config.precision, device)
    if world_size == 1:
        return Runtime(device, choice.precision, choice=choice)
    if device.type == "mps":
        raise CharRNNError("several processes need CUDA (nccl) or the CPU (gloo); not mps")
    backend = "nccl" if device.type == "cuda" else "gloo"
    # MASTER_ADDR / MASTER_PORT come from torchrun (env:// rendezvous).
    dist.init_process_group(
        backend,
        rank=rank,
        world_size=world_size,
        device_id=device if backend == "nccl" else None,
    )
    collective_device = device if backend == "nccl" else torch.device("cpu")
    group = ProcessGroup(rank, world_size, local_rank, collective_device)
    choice = agreed(choice, group)
    return Runtime(device, choice.precision, group, choice)


@contextlib.contextmanager
def running(config: RuntimeConfig | None = None) -> Iterator[Runtime]:
    """The runtime (start_runtime) for a block that trains, left at its end.

    Under torchrun, after a block that succeeded every process waits for the others
    before leaving the group: a process that left early closed gloo's connections under
    a slower one (SIGABRT). After an error the others may never arrive, so nobody
    waits. A collective that fails because another process of the run failed or was
    killed becomes PeerStopped (that process says why in its own error).
    """
    runtime = start_runtime(config)
    try:
        yield runtime
        runtime.group.barrier()
    except RuntimeError as error:
        gone = lost_peer(error) if runtime.group.distributed else None
        if gone is None:
            raise
        raise PeerStopped(f"stopped, as another process of the run did ({gone})") from None
    finally:
        # DistributedDataParallel's reducer holds the group: free what the block left
        # (reference cycles included) while the group still stands.
        gc.collect()
        runtime.close()


def agreed(choice: PrecisionChoice, group: ProcessGroup) -> PrecisionChoice:
    """`choice`, or float32 where auto chose bf16 but another process (on another
    machine) did not: all processes train in one precision."""
    (with_bf16,) = group.sum(choice.precision == "bf16")
    if choice.requested != "auto" or with_bf16 in (0, group.world_size):
        return choice
    evidence = f"{int(with_bf16)} of {group.world_size} processes have native bfloat16"
    return replace(choice, precision="fp32", bf16=Bf16Support(False, evidence))
