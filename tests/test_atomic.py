"""Crash-safe writes: atomic.py's writers and reader, and no file written anywhere else."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from charrnn.atomic import LineLog, atomic_write_bytes, atomic_writer, read_json_lines

PACKAGE = Path(__file__).resolve().parents[1] / "charrnn"
WRITERS = {"write_text", "write_bytes", "tofile", "save_file", "open_memmap"}  # any receiver
MODULE_WRITERS = {  # module.function
    "np": {"save", "savez", "savez_compressed", "savetxt"},
    "numpy": {"save", "savez", "savez_compressed", "savetxt"},
    "torch": {"save"},
    "shutil": {"copy", "copy2", "copyfile", "copytree", "move"},
    "os": {"link", "symlink", "replace", "rename"},
}
OPEN_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}


def _constant(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _mode(call: ast.Call, position: int, keyword: str = "mode") -> str | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return _constant(kw.value)
    return _constant(call.args[position]) if len(call.args) > position else None


def _writes(call: ast.Call) -> str | None:
    """What a call writes to a file, in words; None for a call that writes nothing."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    owner = (
        func.value.id
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
        else None
    )
    if name == "open" and owner == "os":
        if call.args and ast.unparse(call.args[0]) == "os.devnull":
            return None  # the null device: nothing is stored
        flags = {n.attr for n in ast.walk(call) if isinstance(n, ast.Attribute)}
        return "os.open for writing" if flags & OPEN_FLAGS else None
    if name in ("open", "fdopen"):
        # open(path, mode) and os.fdopen(fd, mode), but Path.open(mode)
        position = 0 if isinstance(func, ast.Attribute) and owner not in ("io", "os") else 1
        mode = _mode(call, position) or "r"
        return f"open(..., {mode!r})" if set(mode) & set("wax+") else None
    if name == "memmap" or (name == "load" and owner in ("np", "numpy")):
        # np.memmap(path, dtype, mode), np.load(path, mmap_mode=...)
        mode = (_mode(call, 2) if name == "memmap" else _mode(call, 9, "mmap_mode")) or "r"
        return f"{name} mode {mode!r}" if set(mode) & set("w+") else None
    if name in WRITERS:
        return f"{name}()"
    if owner in MODULE_WRITERS and name in MODULE_WRITERS[owner]:
        return f"{owner}.{name}()"
    return None


def file_writes(source: str) -> list[str]:
    """Every call in `source` that writes a file, as 'line: what'."""
    return [
        f"{node.lineno}: {what}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and (what := _writes(node))
    ]


@pytest.mark.parametrize(
    "snippet",
    [
        "open(path, 'w')",
        "open(path, mode='ab')",
        "Path(p).open('a', encoding='utf-8')",
        "path.write_text('x')",
        "path.write_bytes(b'x')",
        "ids.tofile(path)",
        "np.save(path, ids)",
        "torch.save(model, path)",
        "np.lib.format.open_memmap(path, mode='w+')",
        "np.memmap(path, dtype, 'r+')",
        "np.load(path, mmap_mode='r+')",
        "shutil.copyfile(a, b)",
        "os.replace(a, b)",
        "os.open(path, os.O_WRONLY | os.O_CREAT)",
        "os.fdopen(fd, 'wb')",
    ],
)
def test_the_scan_finds_a_write(snippet):
    assert file_writes(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "open(path)",
        "open(path, 'rb')",
        "path.open('rb')",
        "path.read_text()",
        "np.load(path, mmap_mode='r')",
        "os.open(folder, os.O_RDONLY)",
        "os.open(os.devnull, os.O_WRONLY)",
        "text.replace('a', 'b')",
    ],
)
def test_the_scan_passes_a_read(snippet):
    assert not file_writes(snippet)


@pytest.mark.parametrize(
    "module",
    sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")),
)
def test_files_are_written_only_through_atomic(module):
    if module == "atomic.py":
        return
    source = (PACKAGE / module).read_text(encoding="utf-8")
    assert file_writes(source) == [], f"charrnn/{module} writes a file itself; use charrnn.atomic"


def test_a_failed_streamed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "ids.npy"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write(b"new, half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_writer(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    atomic_write_bytes(tmp_path / "sub" / "x", b"x")  # makes the folder
    assert (tmp_path / "sub" / "x").read_bytes() == b"x"


def test_a_log_cut_short_by_a_kill_reads_up_to_its_last_whole_line(tmp_path):
    log = LineLog(tmp_path / "steps.jsonl")
    log.append({"step": 1})
    log.append({"step": 2})
    log.flush()
    with (tmp_path / "steps.jsonl").open("a") as handle:  # a kill mid-line, simulated
        handle.write('{"step": 3, "lo')
    assert read_json_lines(tmp_path / "steps.jsonl") == [{"step": 1}, {"step": 2}]
    assert read_json_lines(tmp_path / "missing.jsonl") == []


def test_a_rewritten_log_goes_on_in_the_new_file(tmp_path):
    path = tmp_path / "steps.jsonl"
    log = LineLog(path)
    for step in (1, 2, 3):
        log.append({"step": step})
    log.rewrite([{"step": 1}])
    log.append({"step": 2})
    log.close()
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def test_reading_a_run_imports_no_trainer():
    code = (
        "import sys, charrnn.training.rundir, charrnn.views.runinfo; "
        "print(sorted(m for m in sys.modules if m.startswith('charrnn.training')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = eval(out)
    assert "charrnn.training.trainer" not in loaded and "charrnn.training.runtime" not in loaded
