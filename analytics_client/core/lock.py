"""One run per pipeline (or per pipeline and resource) at a time on this machine, with a lock
the kernel frees if we die.

Two runs of a pipeline would race on its marks (Prefect blocks have no compare-and-set) and
its tables. ``flock`` is released by the kernel when the holding process exits, even by
SIGKILL, so a crashed run can never hold the lock forever. Across machines, the Prefect flows
also hold a global concurrency limit per pipeline and resource (orchestration/locks.py), and
deployments carry ``concurrency_limit: 1`` with ``collision_strategy: CANCEL_NEW``.

On this machine the kernel's lock is the authority: a process that holds a resource's lock
(``holds``) knows that no live process of this lock directory does. What a holder leaves
elsewhere (a Prefect slot) it describes in a note beside the lock (``note_path``), naming the
process (``Holder``: host, boot id, pid, start time), so that the next holder can tell that it
died and take back what it left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from analytics_client.core.errors import PipelineBusyError

__all__ = ["Holder", "holds", "lock_dir", "note_path", "pipeline_lock", "table_write_lock"]


def lock_dir() -> Path:
    return Path(os.environ.get("ANALYTICS_SYNC_LOCK_DIR")
                or Path(tempfile.gettempdir()) / "analytics-sync-locks")


# (lock file, thread) -> depth: the command line and the flow it runs (same thread) share a lock
_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()


@contextlib.contextmanager
def pipeline_lock(pipeline: str, resources: Iterable[str] | None = None) -> Iterator[None]:
    """Hold the pipeline's lock for the block, or fail at once naming the holder.

    ``resources=None`` holds the whole pipeline (maintenance).
    Given names, it holds just those resources of the pipeline: runs of *other* resources of
    it may go on at the same time (a fan-out's flow run per resource, flows/fanout.py), a
    second run of one of them may not, and neither may a whole-pipeline hold. (A shared
    ``flock`` on the pipeline's file plus an exclusive one per resource: marks and tables are
    per pipeline and resource, so nothing else is shared between them.)

    Re-entrant within a thread, so the command line can take it before Prefect starts (a
    second run then fails in a second, not after a server start) and the flow again inside;
    the outer hold must cover the inner one (same or more resources).
    """
    with contextlib.ExitStack() as stack:
        if resources is None:
            stack.enter_context(_reentrant(_path(pipeline), fcntl.LOCK_EX, pipeline, None))
        else:
            stack.enter_context(_reentrant(_path(pipeline), fcntl.LOCK_SH, pipeline, None))
            for resource in sorted(set(resources)):  # one order everywhere: no deadlock
                stack.enter_context(_reentrant(_path(pipeline, resource), fcntl.LOCK_EX,
                                               pipeline, resource))
        yield


def holds(pipeline: str, resource: str) -> bool:
    """Whether this process holds the lock of the pipeline's resource (in any of its threads)."""
    path = str(_path(pipeline, resource))
    with _held_guard:
        return any(held == path and depth for (held, _), depth in _held.items())


def note_path(pipeline: str, resource: str) -> Path:
    """``<pipeline>.resources/<resource>.lease``: what the lock's holder holds elsewhere, written
    and read by the holder only (its lock file is rewritten by each new holder)."""
    lock = _path(pipeline, resource)
    return lock.with_name(lock.name.removesuffix(".lock") + ".lease")


@dataclasses.dataclass(frozen=True)
class Holder:
    """A process, named so that another process can tell, later, whether it has ended."""

    host: str
    boot_id: str  # /proc/sys/kernel/random/boot_id: a pid means nothing across a reboot
    pid: int
    started: int  # its start, in clock ticks after boot (/proc/PID/stat): a pid is reused

    @classmethod
    def this_process(cls) -> Holder:
        pid = os.getpid()
        return cls(socket.gethostname(), _boot_id(), pid, _started(pid))

    def ended(self) -> bool:
        """True when this process is known to have ended: it ran on this machine, and the machine
        booted since or no process has its pid and start time. False when it runs, or when
        this machine cannot tell (another host, or no /proc)."""
        here = Holder.this_process()
        if self.host != here.host or not self.boot_id or not here.boot_id:
            return False
        if self.boot_id != here.boot_id:
            return True
        return _started(self.pid) != self.started


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _started(pid: int) -> int:
    """The process's start time in clock ticks after boot; -1 when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    # Field 22; the command name (field 2) may hold spaces and parentheses: split after it.
    return int(stat.rpartition(")")[2].split()[19])


def _path(pipeline: str, resource: str | None = None) -> Path:
    """``<pipeline>.lock``, and ``<pipeline>.resources/<resource>.lock`` per resource."""
    def part(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)

    if resource is None:
        return lock_dir() / f"{part(pipeline)}.lock"
    return lock_dir() / f"{part(pipeline)}.resources" / f"{part(resource)}.lock"


@contextlib.contextmanager
def _reentrant(path: Path, mode: int, pipeline: str, resource: str | None) -> Iterator[None]:
    key = (str(path), threading.get_ident())
    with _held_guard:
        reentered = bool(_held.get(key))
        if reentered:
            _held[key] += 1
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    with _flock(path, mode, pipeline, resource):
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(key, None)


@contextlib.contextmanager
def _flock(path: Path, mode: int, pipeline: str, resource: str | None) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            what = f"pipeline {pipeline!r}" + (f" resource {resource!r}" if resource else "")
            raise PipelineBusyError(
                f"{what} is already running (pid {holder.get('pid', '?')}, "
                f"since {holder.get('since', '?')}); this run did nothing. Wait for it to "
                "finish, or use another --pipeline name for another organization or lake"
            ) from None
        os.ftruncate(fd, 0)  # the holder's note (the last one, among shared holders)
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.write(fd, json.dumps({"pid": os.getpid(), "since": since}).encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read(fd: int) -> dict[str, object]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def table_write_lock(table_uri: str, timeout: float = 600.0) -> Iterator[None]:
    """Serialize commits to one table from this machine, waiting for the other writer.

    Delta's conflict checks let two concurrent merges insert the same new key twice (both
    see it missing, both append). Writers of one table on one machine take turns here; across
    machines, give each table one pipeline (deployments run with ``concurrency_limit: 1``).
    """
    directory = lock_dir() / "tables"
    directory.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(table_uri.encode()).hexdigest()[:32] + ".lock"
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PipelineBusyError(
                        f"another writer has held the table {table_uri} for {timeout:.0f} s"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)
