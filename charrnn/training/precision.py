"""Which numeric precision training computes in: whether the hardware has native
bfloat16, and what `--precision auto` (the default) resolves to.

Whatever the choice, weights, AdamW moments, the carried recurrent state, training
states and model files are float32; bf16 and fp16 are `torch.autocast` around the
forward pass (runtime.Runtime.autocast). bf16 pays where the hardware multiplies
bfloat16 natively: x86 CPUs with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake,
Sapphire Rapids and later, which also have AMX-BF16) and GPUs of compute capability
8 or more. Elsewhere it is emulated, slower than float32, and oneDNN's LSTM refuses it
outright ("could not create a primitive descriptor", on a Zen 3 with AVX2).

`cpu_bfloat16` decides from `CpuFacts`, which tests fake; `CpuFacts.read` asks torch
and the kernel. Before bf16 is chosen, `autocast_failure` runs one tiny LSTM step
under it on the device: hardware that should manage but does not (a torch or driver
without the kernel) costs a fallback to float32, not a crashed run.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import CharRNNError

# CPU flags (/proc/cpuinfo) that mean native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")


@dataclass(frozen=True)
class CpuFacts:
    """What torch and the operating system report about this CPU."""

    machine: str  # platform.machine(): x86_64, AMD64, aarch64, arm64, ...
    # torch.cpu._is_avx512_bf16_supported(): what oneDNN will use (it also checks that
    # the OS saves the AVX-512 registers); None where this torch cannot say.
    torch_bf16: bool | None
    torch_capability: str  # the kernels torch dispatches to: AVX2, AVX512, DEFAULT, ...
    onednn: bool  # torch built with oneDNN (the fused CPU LSTM and bf16 matrix products)
    flags: frozenset[str]  # the kernel's flags for the CPU; empty where not readable

    @classmethod
    def read(cls) -> CpuFacts:
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return cls(
            machine=platform.machine(),
            torch_bf16=bool(probe()) if probe else None,
            torch_capability=torch.backends.cpu.get_cpu_capability(),
            onednn=torch.backends.mkldnn.is_available(),
            flags=_proc_cpu_flags(),
        )


def _proc_cpu_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = path.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


@dataclass(frozen=True)
class Bf16Support:
    """Whether a device computes bfloat16 natively, and the evidence in words."""

    native: bool
    evidence: str


def cpu_bfloat16(facts: CpuFacts | None = None) -> Bf16Support:
    """Whether this CPU (or the one `facts` describe) has native bfloat16 that torch
    uses. torch's answer wins where it gives one: a flag the OS has not enabled is
    no use to oneDNN. Without it, the kernel's flags decide."""
    facts = facts or CpuFacts.read()
    if facts.machine.lower() not in X86_MACHINES:
        return Bf16Support(
            False,
            f"a {facts.machine} CPU: bf16 training is used on x86 CPUs with "
            f"{' or '.join(BF16_CPU_FLAGS)} only",
        )
    if not facts.onednn:
        return Bf16Support(False, "this torch build has no oneDNN")
    listed = [flag for flag in BF16_CPU_FLAGS if flag in facts.flags]
    if facts.torch_bf16 is not None:
        found = "finds avx512_bf16" if facts.torch_bf16 else "finds no avx512_bf16"
        evidence = f"torch {found} and runs its {facts.torch_capability} kernels"
        if listed and not facts.torch_bf16:
            evidence += f", though the CPU lists {', '.join(listed)}"
        return Bf16Support(facts.torch_bf16, evidence)
    if listed:
        return Bf16Support(True, f"the CPU lists {', '.join(listed)}")
    return Bf16Support(False, f"the CPU lists neither {' nor '.join(BF16_CPU_FLAGS)}")


def device_bfloat16(device: torch.device, cpu: Bf16Support | None = None) -> Bf16Support:
    """Native bfloat16 on `device`: cpu_bfloat16 for the CPU (or `cpu`, given),
    compute capability 8+ for CUDA; MPS is not used for mixed precision."""
    if device.type == "cpu":
        return cpu or cpu_bfloat16()
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Bf16Support(True, f"{torch.cuda.get_device_name(device)} has bfloat16")
        return Bf16Support(False, f"{torch.cuda.get_device_name(device)} has no bfloat16")
    return Bf16Support(False, f"mixed precision is not used on {device.type}")


PRECISION_NAMES = {"fp32": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a process trains in (`precision`: fp32, bf16 or fp16), what was
    asked for (`requested`: auto or one of those), the device's type and bfloat16
    support it was decided on, and the reason when it is not the plain answer to the
    request (a resumed run's own precision)."""

    precision: str
    requested: str
    bf16: Bf16Support
    device_type: str = "cpu"
    reason: str | None = None

    def describe(self) -> str:
        """One line: the precision and, unless asked for by name, why."""
        name = PRECISION_NAMES[self.precision]
        if self.reason:
            return f"{name} ({self.reason})"
        if self.requested != "auto":
            return name
        return f"{name} (auto: {self.bf16.evidence})"

    def runs(self, precision: str) -> bool:
        """Whether this device trains in `precision`."""
        return (
            precision == "fp32"
            or (precision == "bf16" and self.bf16.native)
            or (precision == "fp16" and self.device_type == "cuda")
        )


def autocast_failure(device: torch.device, dtype: torch.dtype = torch.bfloat16) -> str | None:
    """None when a tiny LSTM (the cell whose fused kernels are the fussiest) runs a
    forward and backward pass under autocast to `dtype` on `device`; else the error's
    first line. Leaves the random number generators as they were."""
    try:
        with torch.random.fork_rng(devices=[]):
            lstm = torch.nn.LSTM(4, 8, batch_first=True).to(device)
        with torch.autocast(device.type, dtype=dtype):
            out, _ = lstm(torch.ones(2, 3, 4, device=device))
        out.float().sum().backward()
    except RuntimeError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return first.split(". ")[0]  # oneDNN goes on with advice on verbose logging
    return None


def choose_precision(
    requested: str,
    device: torch.device,
    bf16: Bf16Support | None = None,
    probe=None,
) -> PrecisionChoice:
    """The precision for `--precision REQUESTED` on `device` (whose bfloat16 support
    is `bf16`, read when None). auto: bf16 where it is native and `probe` (device ->
    an error or None; autocast_failure when None) finds bf16 autocast working,
    float32 elsewhere.
    bf16 asked for where it is not native or fails, and fp16 off CUDA, are one-line
    errors: asked for by name, a silent float32 would hide that the request was not met."""
    bf16 = bf16 or device_bfloat16(device)
    if bf16.native and requested in ("auto", "bf16"):
        failure = (probe or autocast_failure)(device)
        if failure:
            bf16 = Bf16Support(False, f"{bf16.evidence}, but bf16 autocast fails: {failure}")
    if requested == "auto":
        return PrecisionChoice("bf16" if bf16.native else "fp32", requested, bf16, device.type)
    if requested == "bf16" and not bf16.native:
        raise CharRNNError(
            f"--precision bf16: no native bfloat16 on {device.type}: {bf16.evidence}; "
            "use --precision auto or fp32"
        )
    if requested == "fp16" and device.type != "cuda":
        raise CharRNNError(
            f"--precision fp16 needs a CUDA device (its loss scaling is CUDA's); "
            f"on {device.type} use --precision auto or fp32"
        )
    return PrecisionChoice(requested, requested, bf16, device.type)


def resumed_precision(
    choice: PrecisionChoice, recorded: str | None
) -> tuple[PrecisionChoice, str | None]:
    """The precision a resumed run continues in, and a note when it is not the one
    the run used (`recorded`: its last state's; None for a state that does not say).
    With auto the run keeps its own precision where this device has it, so that a
    resume on the same machine stays exact; a precision given by name is obeyed."""
    if recorded is None or recorded == choice.precision:
        return choice, None
    was = PRECISION_NAMES.get(recorded, recorded)
    if choice.requested != "auto":
        now = PRECISION_NAMES[choice.precision]
        return choice, f"the run trained in {was}; it continues in {now}, as asked"
    if choice.runs(recorded):
        return replace(choice, precision=recorded, reason="auto: the run's own"), None
    fallback = replace(choice, precision="fp32")
    if recorded == "bf16":
        return fallback, (
            f"the run trained in {was}; it continues in float32 "
            f"(no native bfloat16 here: {choice.bf16.evidence})"
        )
    return fallback, f"the run trained in {was}; it continues in float32 on {choice.device_type}"
