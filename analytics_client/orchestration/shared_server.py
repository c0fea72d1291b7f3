"""A temporary Prefect server the commands of one ``PREFECT_HOME`` share for a while.

Without ``PREFECT_API_URL`` every ``python flows/main.py`` started Prefect's temporary server and
stopped it at exit: 7-8 of a no-op run's 17 s wall and 9 of its 15 CPU s on a 2-core machine
(issue 24; bench/RESULTS.md), paid again by every run of a laptop's cron. Now the first command
starts one that outlives it, and every command in the next ``ANALYTICS_SYNC_SERVER_IDLE_SECONDS``
(600) uses it; it stops itself that long after the last command using it ended. ``0`` keeps
Prefect's own behaviour (a server per command, ending with it).

It is the same server as before, started the same way (``temporary_server.py``: Prefect's
uvicorn command, its ephemeral settings, leases in files, the repossessor), in a session of its
own, so Ctrl-C in a terminal never reaches it. What is new is how it ends, through two locks in
``$PREFECT_HOME/analytics-sync-server/``:

* ``users.lock``: every command using the server holds it shared until it exits (the kernel
  drops it however the command ends, SIGKILL included). The server stops once it has been able
  to take it exclusively for the whole idle time: no command used it all that while.
* ``start.lock``: held exclusively while a command looks for the server and starts one, and by
  the server while it retires (removes ``server.json``): a command never picks a server that is
  stopping, and two commands never start two.

``server.json`` names the server (pid, API URL); a server that does not answer ``/health`` is
replaced (and stopped, if that pid is still one of ours).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from analytics_client.core.errors import AnalyticsSyncError, PrefectStartError

__all__ = ["DEFAULT_IDLE_SECONDS", "IDLE_ENV", "SharedServer", "idle_seconds", "use_shared_server",
           "on_temporary_server", "use_temporary_server"]

IDLE_ENV = "ANALYTICS_SYNC_SERVER_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 600.0
DIRECTORY = "analytics-sync-server"
SERVER_MAIN = Path(__file__).with_name("temporary_server.py")
# Prefect's own temporary server's settings (prefect.server.api.server.SubprocessASGIServer).
EPHEMERAL_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                 "PREFECT__SERVER_FINAL": "1"}
PORT_IN_USE = 3  # uvicorn's exit status when it cannot bind

_held: list[int] = []  # users.lock, held shared until this process exits
_using: list[str] = []  # the API URL of the temporary server this process uses
_started: list[subprocess.Popen[bytes]] = []  # never waited for: the server outlives us


@dataclass(frozen=True)
class SharedServer:
    """The server a command uses: its API URL (``http://127.0.0.1:<port>/api``) and pid."""

    api_url: str
    pid: int
    started: bool  # this command started it (else it found it running)


def idle_seconds() -> float:
    """``ANALYTICS_SYNC_SERVER_IDLE_SECONDS`` (seconds; 0: no sharing), 600 when unset.

    Raises AnalyticsSyncError naming the variable when it is not a number >= 0.
    """
    text = os.environ.get(IDLE_ENV, "").strip()
    if not text:
        return DEFAULT_IDLE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise AnalyticsSyncError(
            f"{IDLE_ENV}={text!r} is not a number of seconds >= 0: set it to how long Prefect's "
            "temporary server should stay after the last command (0: stop with each command)")
    return value


def use_shared_server(home: Path, idle: float, *, startup_timeout: float) -> SharedServer:
    """The shared server of ``home`` (Prefect's home), started if none answers; this process
    then holds it until it exits (module docstring).

    Raises PrefectStartError when a new server does not answer within ``startup_timeout`` s.
    """
    directory = home / DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    users = os.open(directory / "users.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(users, fcntl.LOCK_SH)  # waits out a server's retiring (a moment)
    _held.append(users)
    with _exclusive(directory / "start.lock"):
        found = _recorded(directory)
        if found is not None and _healthy(found.api_url):
            return found
        if found is not None:
            _stop_if_ours(found.pid)
        server = _start(directory, idle, startup_timeout)
        (directory / "server.json").write_text(json.dumps(
            {"pid": server.pid, "api_url": server.api_url}))
        return server


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _recorded(directory: Path) -> SharedServer | None:
    try:
        data = json.loads((directory / "server.json").read_text())
        return SharedServer(api_url=str(data["api_url"]), pid=int(data["pid"]), started=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _healthy(api_url: str, timeout: float = 5.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _stop_if_ours(pid: int) -> None:
    """A recorded server that stopped answering: stop it if that pid still runs ours."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if SERVER_MAIN.name.encode() in command:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(directory: Path, idle: float, startup_timeout: float) -> SharedServer:
    import httpx

    deadline = time.monotonic() + startup_timeout
    while True:
        port = _free_port()
        process = _spawn(directory, idle, port)
        api_url = f"http://127.0.0.1:{port}/api"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200:
                    _started.append(process)
                    return SharedServer(api_url=api_url, pid=process.pid, started=True)
            time.sleep(0.1)
        if process.poll() == PORT_IN_USE and time.monotonic() < deadline:
            continue  # taken between our probe and its bind: another port
        if process.poll() is None:
            process.kill()
            process.wait()
        raise PrefectStartError(round(startup_timeout))


def _spawn(directory: Path, idle: float, port: int) -> subprocess.Popen[bytes]:
    """Prefect's uvicorn command for its temporary server, run through ``temporary_server.py``."""
    import prefect
    from prefect.settings import get_current_settings

    from analytics_client.orchestration.server import TEMPORARY_SERVER_DEFAULTS
    from analytics_client.orchestration.temporary_server import IDLE_SECONDS_ENV, SHARED_DIR_ENV

    command = [sys.executable, "-c", f"import runpy; runpy.run_path({str(SERVER_MAIN)!r}, "
               "run_name='__main__')", "--app-dir", str(prefect.__module_path__.parent),
               "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    # Not the command's own settings and secrets (API keys in ANALYTICS_*): the server outlives
    # the command, and needs none of them.
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith("ANALYTICS_") and k != "PREFECT_API_URL"}
    env = {**TEMPORARY_SERVER_DEFAULTS, **inherited, **EPHEMERAL_ENV,
           **get_current_settings().to_environment_variables(exclude_unset=True),
           SHARED_DIR_ENV: str(directory), IDLE_SECONDS_ENV: repr(idle)}
    env.pop("PREFECT_API_URL", None)
    with open(directory / "server.log", "ab") as log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def use_temporary_server() -> str | None:
    """Without ``PREFECT_API_URL``: point this process at the shared temporary server (started
    if need be), or, with ``ANALYTICS_SYNC_SERVER_IDLE_SECONDS=0``, let Prefect start one that
    ends with it (``server.bind_temporary_server_to_this_process``).

    Returns the line to tell the user (None against a configured API). Raises
    PrefectStartError, or AnalyticsSyncError for a bad ``ANALYTICS_SYNC_SERVER_IDLE_SECONDS``.
    """
    from prefect.settings import get_current_settings

    from analytics_client.orchestration.server import bind_temporary_server_to_this_process

    settings = get_current_settings()
    if settings.api.url or os.environ.get("PREFECT_API_URL"):
        return None
    idle = idle_seconds()
    if idle == 0:
        bind_temporary_server_to_this_process()
        return None
    server = use_shared_server(Path(settings.home), idle,
                               startup_timeout=settings.server.ephemeral.startup_timeout_seconds)
    os.environ["PREFECT_API_URL"] = server.api_url
    _using.append(server.api_url)
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
    how = "started" if server.started else "already running"
    return (f"Prefect temporary server at {server.api_url} ({how}; it stops {idle:g} s after "
            f"the last command using it, {IDLE_ENV}=0: with each command)")


def on_temporary_server() -> bool:
    """Whether this process's Prefect API is a temporary server over ``PREFECT_HOME``'s
    database (Prefect's own, or the shared one it uses): one only this machine's runs use."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return not url or url in _using
