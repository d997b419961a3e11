"""The training precision: bfloat16 detection (with faked answers), what
`--precision auto` chooses, the bf16 training path, and resuming across precisions."""

import math

import pytest
import torch
from click.testing import CliRunner
from helpers import NEEDS_NATIVE_BF16, fails, tiny_train_args

from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.model.modelfile import load_model
from charrnn.model.network import CharRNN
from charrnn.text.corpus import preprocess
from charrnn.training import precision
from charrnn.training.precision import (
    Bf16Support,
    CpuFacts,
    autocast_failure,
    choose_precision,
    cpu_bfloat16,
    resumed_precision,
)
from charrnn.training.rundir import RunDir
from charrnn.training.runtime import ProcessGroup, Runtime, agreed, start_runtime
from charrnn.training.trainer import TrainingInterrupted, train
from charrnn.views.runinfo import computed_on

CPU = torch.device("cpu")
ZEN5 = CpuFacts("x86_64", True, "AVX512", True, frozenset({"avx2", "avx512f", "avx512_bf16"}))
ZEN3 = CpuFacts("x86_64", False, "AVX2", True, frozenset({"avx2", "fma"}))
NATIVE = Bf16Support(True, "faked: native")
ABSENT = Bf16Support(False, "faked: none here")


def never_called(device):
    raise AssertionError("the autocast probe ran where no bf16 was considered")


# -- detection ------------------------------------------------------------------


def test_a_zen5_has_native_bfloat16_and_a_zen3_has_none():
    assert cpu_bfloat16(ZEN5) == Bf16Support(
        True, "torch finds avx512_bf16 and runs its AVX512 kernels"
    )
    assert cpu_bfloat16(ZEN3) == Bf16Support(
        False, "torch finds no avx512_bf16 and runs its AVX2 kernels"
    )


def test_torch_overrules_a_flag_the_os_has_not_enabled():
    facts = CpuFacts("x86_64", False, "AVX2", True, frozenset({"avx512_bf16", "amx_bf16"}))
    support = cpu_bfloat16(facts)
    assert not support.native
    assert support.evidence.endswith("though the CPU lists avx512_bf16, amx_bf16")


@pytest.mark.parametrize(
    ("flags", "native", "evidence"),
    [
        ({"avx512_bf16", "amx_bf16", "amx_tile"}, True, "the CPU lists avx512_bf16, amx_bf16"),
        ({"amx_bf16"}, True, "the CPU lists amx_bf16"),
        ({"avx2", "avx512f"}, False, "the CPU lists neither avx512_bf16 nor amx_bf16"),
        (set(), False, "the CPU lists neither avx512_bf16 nor amx_bf16"),
    ],
)
def test_without_torchs_answer_the_cpu_flags_decide(flags, native, evidence):
    facts = CpuFacts("x86_64", None, "AVX512", True, frozenset(flags))
    assert cpu_bfloat16(facts) == Bf16Support(native, evidence)


def test_only_x86_with_onednn_counts():
    arm = CpuFacts("aarch64", None, "SVE256", True, frozenset({"bf16", "sve"}))
    assert not cpu_bfloat16(arm).native and "aarch64" in cpu_bfloat16(arm).evidence
    assert cpu_bfloat16(CpuFacts("AMD64", True, "AVX512", True, frozenset())).native
    no_onednn = CpuFacts("x86_64", True, "AVX512", False, frozenset({"avx512_bf16"}))
    assert cpu_bfloat16(no_onednn) == Bf16Support(False, "this torch build has no oneDNN")


def test_the_facts_read_here_are_what_torch_and_the_kernel_say(tmp_path):
    facts = CpuFacts.read()
    assert facts.torch_bf16 == torch.cpu._is_avx512_bf16_supported()
    assert facts.torch_capability == torch.backends.cpu.get_cpu_capability()
    assert all(isinstance(flag, str) for flag in facts.flags)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert precision._proc_cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert precision._proc_cpu_flags(tmp_path / "missing") == frozenset()


def test_the_probe_agrees_with_the_detection_and_leaves_the_rng_alone():
    rng = torch.get_rng_state()
    failure = autocast_failure(CPU)
    assert torch.equal(torch.get_rng_state(), rng)
    # Native bfloat16: oneDNN's LSTM runs under bf16 autocast; without it, it refuses.
    assert (failure is None) == cpu_bfloat16().native, failure
    if failure:
        assert "\n" not in failure and "LSTM" in failure


# -- choosing ---------------------------------------------------------------------


def test_auto_is_bf16_where_native_and_float32_elsewhere():
    chosen = choose_precision("auto", CPU, NATIVE, probe=lambda device: None)
    assert (chosen.precision, chosen.requested) == ("bf16", "auto")
    assert chosen.describe() == "bf16 autocast (auto: faked: native)"
    chosen = choose_precision("auto", CPU, ABSENT, probe=never_called)
    assert chosen.precision == "fp32"
    assert chosen.describe() == "float32 (auto: faked: none here)"


def test_auto_falls_back_to_float32_when_bf16_autocast_fails():
    chosen = choose_precision("auto", CPU, NATIVE, probe=lambda device: "no kernel")
    assert chosen.precision == "fp32"
    assert chosen.bf16.evidence == "faked: native, but bf16 autocast fails: no kernel"


def test_bf16_by_name_where_it_is_not_native_is_one_clear_error():
    with pytest.raises(CharRNNError) as error:
        choose_precision("bf16", CPU, ABSENT, probe=never_called)
    assert str(error.value) == (
        "--precision bf16: no native bfloat16 on cpu: faked: none here; "
        "use --precision auto or fp32"
    )
    with pytest.raises(CharRNNError, match="bf16 autocast fails: no kernel"):
        choose_precision("bf16", CPU, NATIVE, probe=lambda device: "no kernel")
    chosen = choose_precision("bf16", CPU, NATIVE, probe=lambda device: None)
    assert chosen.precision == "bf16" and chosen.describe() == "bf16 autocast"


@pytest.mark.real_precision  # device_bfloat16 itself, for MPS
def test_fp32_is_never_probed_and_fp16_needs_cuda():
    assert choose_precision("fp32", CPU, NATIVE, probe=never_called).precision == "fp32"
    with pytest.raises(CharRNNError, match="--precision fp16 needs a CUDA device"):
        choose_precision("fp16", CPU, NATIVE, probe=never_called)
    cuda = choose_precision("fp16", torch.device("cuda"), NATIVE, probe=never_called)
    assert cuda.precision == "fp16"
    mps = precision.device_bfloat16(torch.device("mps"))
    assert mps == Bf16Support(False, "mixed precision is not used on mps")


def test_the_default_runtime_follows_the_detection(monkeypatch):
    assert RuntimeConfig().precision == "auto"
    assert start_runtime(RuntimeConfig("cpu")).precision == "fp32"  # conftest: none here
    monkeypatch.setattr(precision, "device_bfloat16", lambda device, cpu=None: NATIVE)
    monkeypatch.setattr(precision, "autocast_failure", lambda device: None)
    runtime = start_runtime(RuntimeConfig("cpu"))
    assert runtime.precision == "bf16"
    assert runtime.describe()["precision_reason"] == "bf16 autocast (auto: faked: native)"


class FakeGroup(ProcessGroup):
    """Two ranks whose sum of the bf16 votes is `votes`."""

    def __init__(self, votes):
        super().__init__(0, 2)
        self.votes = votes

    def sum(self, *values):
        return [self.votes]


def test_processes_train_in_bf16_only_if_all_of_them_can():
    mine = choose_precision("auto", CPU, NATIVE, probe=lambda device: None)
    assert agreed(mine, FakeGroup(2)) == mine
    mixed = agreed(mine, FakeGroup(1))
    assert mixed.precision == "fp32"
    assert mixed.bf16.evidence == "1 of 2 processes have native bfloat16"
    named = choose_precision("bf16", CPU, NATIVE, probe=lambda device: None)
    assert agreed(named, FakeGroup(1)) == named  # by name: the others fail on their own


@pytest.mark.parametrize(
    ("requested", "support", "recorded", "expected", "note"),
    [
        ("auto", NATIVE, "fp32", "fp32", None),  # keeps the run's own: exact resume
        ("auto", NATIVE, "bf16", "bf16", None),
        ("auto", ABSENT, "fp32", "fp32", None),
        ("auto", NATIVE, None, "bf16", None),  # a state that does not say
        (
            "auto",
            ABSENT,
            "bf16",
            "fp32",
            "the run trained in bf16 autocast; it continues in float32 "
            "(no native bfloat16 here: faked: none here)",
        ),
        (
            "auto",
            NATIVE,
            "fp16",
            "fp32",
            "the run trained in fp16 autocast; it continues in float32 on cpu",
        ),
        (
            "fp32",
            NATIVE,
            "bf16",
            "fp32",
            "the run trained in bf16 autocast; it continues in float32, as asked",
        ),
        (
            "bf16",
            NATIVE,
            "fp32",
            "bf16",
            "the run trained in float32; it continues in bf16 autocast, as asked",
        ),
    ],
)
def test_a_resume_keeps_the_runs_precision_unless_told_or_unable(
    requested, support, recorded, expected, note
):
    choice = choose_precision(requested, CPU, support, probe=lambda device: None)
    resumed, said = resumed_precision(choice, recorded)
    assert (resumed.precision, said) == (expected, note)


# -- the bf16 training path ---------------------------------------------------------


@pytest.fixture
def prepared(tmp_path, tiny_corpus_file):
    return preprocess(tiny_corpus_file, tmp_path / "data", DataConfig())


@pytest.mark.parametrize(
    ("cell", "output"),
    [
        # The vanilla RNN runs bf16 autocast on any CPU (emulated where not native).
        ("rnn", "softmax"),
        ("rnn", "adaptive"),
        pytest.param("lstm", "softmax", marks=NEEDS_NATIVE_BF16),
        pytest.param("lstm", "adaptive", marks=NEEDS_NATIVE_BF16),
    ],
)
def test_bf16_training_learns_as_float32_does_and_keeps_everything_float32(
    tmp_path, prepared, cell, output
):
    model = ModelConfig(
        vocab_size=len(prepared.vocab),
        cell=cell,
        hidden=32,
        embedding=8,
        output=output,
        cutoffs=(8,) if output == "adaptive" else (),
    )
    config = TrainConfig(max_time=0, max_steps=60, batch_size=8, seq_len=16, seed=4)
    run = tmp_path / "run"
    bf16 = Runtime(CPU, "bf16")
    with pytest.raises(TrainingInterrupted):
        train(
            prepared,
            model,
            config,
            run,
            runtime=bf16,
            should_stop=iter([False] * 30 + [True]).__next__,
        )
    state = RunDir(run).latest_state()
    assert state.meta["runtime"]["precision"] == "bf16"
    floating = [t.dtype for t in state.tensors.values() if t.is_floating_point()]
    assert set(floating) == {torch.float32}  # weights, AdamW moments, carried state
    assert any(name.startswith("hidden.") for name in state.tensors)
    result = train(prepared, model, config, tmp_path / "whole", runtime=bf16)
    history = result.history
    assert all(r["precision"] == "bf16" for r in history)
    # Against float32 after the same 60 updates, not against a fixed loss (which depends on
    # the kernels of the CPU at hand). Measured on a Zen 5 (native bf16), seeds 4-6, every
    # cell and head: bf16 within 2e-4 nats of float32, both 0.4-1.3 nats below their first
    # validation.
    reference = train(prepared, model, config, tmp_path / "fp32", runtime=Runtime(CPU, "fp32"))
    fp32_gain = reference.history[0]["val_loss"] - reference.history[-1]["val_loss"]
    bf16_gain = history[0]["val_loss"] - history[-1]["val_loss"]
    assert fp32_gain > 0.3  # the comparison means something: float32 learned
    assert abs(history[-1]["val_loss"] - reference.history[-1]["val_loss"]) < 0.05
    assert bf16_gain > 0.8 * fp32_gain
    loaded = load_model(tmp_path / "whole")
    weights = loaded.model.state_dict().values()
    assert {v.dtype for v in weights if v.is_floating_point()} == {torch.float32}


def test_the_adaptive_head_normalises_in_float32_under_autocast(prepared):
    config = ModelConfig(
        vocab_size=len(prepared.vocab), cell="rnn", hidden=16, embedding=4, output="adaptive",
        cutoffs=(6, 12),
    )  # fmt: skip
    torch.manual_seed(0)
    model = CharRNN(config)
    ids = torch.randint(0, config.vocab_size, (3, 7))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_probs, _ = model.log_probs(ids)
        target, _ = model(ids[:, :-1], targets=ids[:, 1:])
    assert log_probs.dtype == target.dtype == torch.float32
    # A bf16 log-softmax would miss 0 by ~1e-2.
    assert torch.logsumexp(log_probs, -1).abs().max() < 1e-5
    picked = log_probs[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    assert torch.allclose(picked, target, atol=1e-2)  # the products differ by bf16 rounding


# -- through the CLI ----------------------------------------------------------------


def test_bf16_asked_for_on_a_cpu_without_it_is_refused_before_anything_is_written(
    tmp_path, tiny_corpus_file
):
    run = tmp_path / "run"
    args = tiny_train_args(tiny_corpus_file, run, "--precision", "bf16", "--device", "cpu")
    result = CliRunner().invoke(cli, args)
    fails(result, "Error: --precision bf16: no native bfloat16 on cpu: the tests train in float32")
    assert len(result.stderr.strip().splitlines()) == 1 and not run.exists()


@pytest.mark.real_precision
def test_the_start_line_and_info_say_what_auto_chose_on_this_cpu(tmp_path, tiny_corpus_file):
    run = tmp_path / "run"
    args = tiny_train_args(tiny_corpus_file, run, "--max-steps", "4", "--device", "cpu")
    result = CliRunner().invoke(cli, [a for a in args if a != "-q"])
    assert result.exit_code == 0, result.output
    support = cpu_bfloat16()
    chosen = "bf16 autocast" if support.native else "float32"
    assert f"; cpu, {chosen} (auto: {support.evidence})" in result.stderr
    info = CliRunner().invoke(cli, ["info", str(run), "--json"])
    runtime = load_model(run).info["runtime"]
    assert runtime["precision"] == ("bf16" if support.native else "fp32")
    assert runtime["precision_reason"] == f"{chosen} (auto: {support.evidence})"
    assert '"precision_reason"' in info.stdout


def test_a_bf16_run_resumed_without_bfloat16_goes_on_in_float32_with_a_note(
    tmp_path, tiny_corpus_file, prepared
):
    model = ModelConfig(vocab_size=len(prepared.vocab), cell="rnn", hidden=16, embedding=4)
    config = TrainConfig(
        max_time=0, max_steps=20, batch_size=4, seq_len=8, seed=2, eval_every=5,
        checkpoint_every=0,
    )  # fmt: skip
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        stop_at_10 = iter([False] * 10 + [True]).__next__
        train(prepared, model, config, run, runtime=Runtime(CPU, "bf16"), should_stop=stop_at_10)
    resume = ["train", "--resume", str(run), "--device", "cpu"]
    result = CliRunner().invoke(cli, resume)  # precision auto: none here
    assert result.exit_code == 0, result.output
    assert (
        "note: the run trained in bf16 autocast; it continues in float32 "
        "(no native bfloat16 here: the tests train in float32 unless they ask)"
    ) in result.stderr
    history = RunDir(run).metrics()
    assert [r["precision"] for r in history] == ["bf16", "bf16", "fp32", "fp32"]
    assert all(math.isfinite(r["val_loss"]) for r in history)
    described = computed_on(load_model(run).info["runtime"], history)
    assert described == (
        "cpu, float32 (auto: the tests train in float32 unless they ask); "
        "the run: bf16 to step 10, then fp32"
    )


def test_a_resume_that_keeps_the_runs_precision_says_so():
    here = choose_precision("auto", CPU, NATIVE, probe=lambda device: None)
    kept, note = resumed_precision(here, "fp32")
    assert note is None and kept.describe() == "float32 (auto: the run's own)"
    gpu = choose_precision("auto", torch.device("cuda"), ABSENT, probe=never_called)
    kept, note = resumed_precision(gpu, "fp16")  # fp16 runs on any CUDA device
    assert note is None and (kept.precision, kept.reason) == ("fp16", "auto: the run's own")
