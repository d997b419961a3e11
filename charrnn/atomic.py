"""Every file charrnn writes goes through here, crash-safe whatever moment the writer dies at.

Whole files (models, states, pages, metadata) are written to a temporary file
in the same directory, fsynced and renamed over the target: a reader sees the
old complete file or the new complete one. JSON-lines logs grow by appending
whole lines instead (`LineLog`); their one reader, `read_json_lines`, drops
a last line cut short, so an append is just as safe, and skips (and counts) a
line damaged otherwise. A lock file (`FileLock`) is written in place instead:
its identity is the lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no flock, and no removing an open file; FileLock locks nothing
    fcntl = None

TEMPORARY_SUFFIX = ".tmp"  # what a killed writer can leave behind (see remove_temporaries)


def _sync_directory(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle for streaming a large file into `path`.

    It writes to a temporary file beside `path`; when the block ends normally the
    file is fsynced and renamed into place, when it raises the temporary is removed
    and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        # mkstemp makes the file private (0600); give it the usual permissions instead.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` in one step."""
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_link(source: str | Path, target: str | Path) -> None:
    """Make `target` the same file as `source` (a hard link, or a copy where links are
    not supported), replacing it in one step."""
    source, target = Path(source), Path(target)
    tmp = target.with_name(f".{target.name}.link{TEMPORARY_SUFFIX}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def remove_temporaries(folder: str | Path) -> int:
    """Delete the temporary files a killed writer left in `folder`; return how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    count = 0
    for tmp in folder.glob(f".*{TEMPORARY_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        count += 1
    return count


class LineLog:
    """A JSON-lines log that grows one record (one line) at a time.

    Appending is crash-safe without a temporary file: a writer killed mid-line
    leaves at most one line cut short at the end, and `read_json_lines` drops it.
    Lines are buffered until `flush`, which also fsyncs; `rewrite` replaces the
    whole log atomically (the next append continues the new file).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._handle = None

    def append(self, record: dict) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def rewrite(self, records: list[dict]) -> None:
        """Replace the log with `records`. An open handle would keep appending to the
        replaced file, so it is closed first."""
        self.close()
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in records).encode())


def _json_lines(path: Path) -> list[tuple[bytes, object]]:
    """Each line of a JSON-lines file (its bytes, without the newline) and its record;
    the record is _DAMAGED where the line is not a JSON object. A last line without
    its newline that is not one was cut short by a kill, and is left out."""
    lines = path.read_bytes().split(b"\n")
    parsed = [(line, _record(line)) for line in lines]
    if parsed[-1][1] is _DAMAGED:  # b"" after the last newline, or a line cut short
        parsed.pop()
    return parsed


def _record(line: bytes):
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return _DAMAGED
    return record if isinstance(record, dict) else _DAMAGED


_DAMAGED = object()  # a line that holds no record


def read_json_lines(
    path: str | Path, damaged: list[int] | None = None, valid=lambda record: True
) -> list[dict]:
    """The records of a JSON-lines log; none when it is missing. A line cut short by a
    kill (the last, without its newline) is dropped. A line that is not a JSON object,
    or not `valid`, damaged by a disk or a person, is skipped and its number (from 1)
    appended to `damaged`."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, (_, record) in enumerate(_json_lines(path), start=1):
        if record is not _DAMAGED and valid(record):
            records.append(record)
        elif damaged is not None:
            damaged.append(number)
    return records


def cut_json_lines(path: str | Path, keep) -> None:
    """Rewrite a JSON-lines log atomically with the records for which `keep(record)`
    holds. Damaged lines are kept as they are (they are someone's data, and nothing
    says which step they belong to); a line cut short by a kill is dropped."""
    path = Path(path)
    if not path.exists():
        return
    kept = [line for line, record in _json_lines(path) if record is _DAMAGED or keep(record)]
    atomic_write_bytes(path, b"".join(line + b"\n" for line in kept))


class LockHeld(Exception):
    """Another process (or another FileLock of this one) holds the lock."""

    def __init__(self, path: Path, pid: str):
        self.path, self.pid = path, pid
        super().__init__(f"{path}: held by pid {pid}")


class FileLock:
    """An exclusive lock (flock) on the file `path`, taken without waiting; the holder's
    pid is written into the file, for the message of whoever finds it taken.

    The kernel releases the lock when the holder dies, however it dies: a file left by
    a killed holder is simply taken by the next. `release` removes the file, then lets
    go of it; `acquire` therefore checks that the file it locked is still the one at
    `path`, and tries again if not.
    """

    ATTEMPTS = 100  # each retry follows a release at that very moment: never many

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> None:
        """Take the lock (nothing to do when held): LockHeld when another holds it,
        FileNotFoundError when the folder of `path` is missing."""
        if self._handle is not None or fcntl is None:
            return
        for _ in range(self.ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _lock_now(fd)
            except BlockingIOError:
                os.close(fd)
                raise LockHeld(self.path, _holder_pid(self.path)) from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                # A file object: a FileLock dropped unreleased still lets go of the lock.
                self._handle = os.fdopen(fd, "r+b", buffering=0)
                return
            os.close(fd)  # locked a file that a release had just removed
        raise LockHeld(self.path, "unknown")

    def release(self) -> None:
        """Let go of the lock (when held), removing the file first while it is ours."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        if _same_file(handle.fileno(), self.path):
            self.path.unlink(missing_ok=True)
        handle.close()


def _lock_now(fd: int) -> None:
    """flock `fd` exclusively, without waiting (BlockingIOError when taken)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        # A file system without locks (some network mounts): go on unlocked rather than
        # make writing there impossible.
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), path.stat())
    except FileNotFoundError:
        return False


def _holder_pid(path: Path) -> str:
    """The pid the lock's holder wrote into `path` ("unknown" if none comes). The holder
    writes it just after taking the lock; until then the file is empty, or holds the
    pid of an earlier holder that died."""
    for _ in range(50):
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except FileNotFoundError:
            text = ""
        if text.isdigit() and _is_running(int(text)):
            return text
        time.sleep(0.01)
    return "unknown"


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only whether the process exists
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):
        return True  # someone else's process (PermissionError), or one that cannot tell
    return True
