"""Prefect's temporary server as our runs start it: it ends when its runs do, frees dead leases.

Run as a file, not imported: ``server.py`` has Prefect start the server's process (and
``shared_server.py`` starts the shared one) with ``python -c <runpy of this file> <uvicorn's
arguments>``; importing it as a module there would import the whole library first, a second of
CPU on every start. In that process it does two things, then hands over to uvicorn exactly as
Prefect would have run it:

* **It ends when the run ends, however the run ends.** The run holds the write end of a pipe
  that is this process's stdin and never writes to it. When the run's process is gone (exit,
  crash, SIGKILL, OOM) the kernel closes that end, the read here returns EOF, and the server
  stops as on SIGTERM (uvicorn's graceful shutdown), or exits outright ``STOP_SECONDS`` later.
  A SIGKILLed run's server used to stay, reparented to init, for as long as the machine ran.
  (``PR_SET_PDEATHSIG`` would signal it when the *thread* that started it ends, which in Prefect
  is not always the main one.)
  A *shared* server (``shared_server.py``: ``SHARED_DIR_ENV`` set) instead ends once no command
  has held its users lock (``SHARED_USERS_ENV``) for ``IDLE_SECONDS_ENV`` seconds, after
  removing its ``server.json`` under ``start.lock`` so that no command picks it while it stops.
* **It runs Prefect's repossessor**, which frees the slots of expired leases. Prefect runs it
  only in a long-lived server; with the temporary server a dead run's slot stayed taken for
  good. ``server.py`` also keeps the leases in files under ``PREFECT_HOME`` (they were in the
  memory of the server that granted them, gone with it) and shortens the repossessor's loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import runpy
import signal
import sys
import threading
import time

STOP_SECONDS = 20.0  # a graceful stop takes about 2 s; after this the process exits anyway
SHARED_DIR_ENV = "ANALYTICS_SYNC_SHARED_SERVER_DIR"  # set by shared_server.py only
SHARED_USERS_ENV = "ANALYTICS_SYNC_SHARED_SERVER_USERS"  # its users lock, in that directory
IDLE_SECONDS_ENV = "ANALYTICS_SYNC_SHARED_SERVER_IDLE"


def _stop_when_the_run_is_gone(fd: int) -> None:
    while os.read(fd, 1024):  # nothing is ever written; b"" is EOF: the run's end is closed
        pass
    _stop()


def _stop() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_SECONDS)
    os._exit(1)


def _stop_when_idle(directory: str, users_name: str, idle: float) -> None:
    """Stop once the users lock was free (no command held it) for ``idle`` seconds in a row."""
    users_path = os.path.join(directory, users_name)
    users = os.open(users_path, os.O_RDWR | os.O_CREAT, 0o600)
    free_since = time.monotonic()
    while True:
        time.sleep(min(5.0, max(0.2, idle / 10)))
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            free_since = time.monotonic()  # a command is using us
            continue
        try:
            if time.monotonic() - free_since >= idle and _retire(directory, users_path):
                break
        finally:
            fcntl.flock(users, fcntl.LOCK_UN)
    _stop()


def _retire(directory: str, users_path: str) -> bool:
    """Remove ``server.json`` if it names us, and our users lock (no command can find it now),
    unless a command is looking for a server at this moment."""
    start = os.open(os.path.join(directory, "start.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(start, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        path = os.path.join(directory, "server.json")
        try:
            with open(path) as file:
                ours = json.load(file).get("pid") == os.getpid()
        except (OSError, ValueError, AttributeError):
            ours = False
        if ours:
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.unlink(users_path)
        return True
    finally:
        os.close(start)


def _run_the_repossessor() -> None:
    """Register Prefect's repossessor for an ephemeral server, as Prefect registers its own
    services (the same function and setting, marked to run in this mode)."""
    from prefect.server.services.perpetual_services import perpetual_service
    from prefect.server.services.repossessor import monitor_expired_leases
    from prefect.settings.context import get_current_settings

    perpetual_service(
        enabled_getter=lambda: get_current_settings().server.services.repossessor.enabled,
        run_in_ephemeral=True,
    )(monitor_expired_leases)


def main() -> None:
    shared = os.environ.get(SHARED_DIR_ENV)
    if shared:
        watch = threading.Thread(target=_stop_when_idle, daemon=True, name="analytics-sync-idle",
                                 args=(shared, os.environ[SHARED_USERS_ENV],
                                       float(os.environ[IDLE_SECONDS_ENV])))
    else:
        watch = threading.Thread(target=_stop_when_the_run_is_gone, daemon=True,
                                 args=(sys.stdin.fileno(),), name="analytics-sync-run-watch")
    watch.start()
    _run_the_repossessor()
    sys.argv = ["uvicorn", *sys.argv[1:]]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
