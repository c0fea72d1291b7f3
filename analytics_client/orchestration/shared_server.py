"""A temporary Prefect server the commands of one ``PREFECT_HOME`` share for a while.

Without ``PREFECT_API_URL`` every ``python flows/main.py`` started Prefect's temporary server and
stopped it at exit: 7-8 of a no-op run's 17 s wall and 9 of its 15 CPU s on a 2-core machine
(issue 24; bench/RESULTS.md), paid again by every run of a laptop's cron. Now the first command
starts one that outlives it, and every command in the next ``ANALYTICS_SYNC_SERVER_IDLE_SECONDS``
(600) uses it; it stops itself that long after the last command using it ended. ``0`` keeps
Prefect's own behaviour (a server per command, ending with it).

It is the same server as before, started the same way (``temporary_server.py``: Prefect's
uvicorn command, its ephemeral settings, leases in files, the repossessor), in a session of its
own, so Ctrl-C in a terminal never reaches it. What is new is how it ends, through locks in
``$PREFECT_HOME/analytics-sync-server/``:

* ``users-<token>.lock``, one per server: every command using that server holds it shared until
  it exits (the kernel drops it however the command ends, SIGKILL included). The server stops
  once it has been able to take it exclusively for its whole idle time: no command used it all
  that while.
* ``start.lock``: held exclusively while a command looks for the server (and takes its users
  lock) or starts one, and by the server while it retires (removes ``server.json``): a command
  never picks a server that is stopping, and two commands never start two.

``server.json`` names the server (pid, API URL, idle time, users lock). One that does not answer
``/health`` (three tries) is left alone, never stopped: commands may still be using a slow one,
and it stops by itself once they are done. A new server takes its place in ``server.json``.

The server keeps an allow-listed environment (``_server_environment``): not the command's API
keys or object-store credentials, which it would otherwise hold for the idle time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from analytics_client.core.errors import AnalyticsSyncError, PrefectStartError

__all__ = ["DEFAULT_IDLE_SECONDS", "IDLE_ENV", "SharedServer", "idle_seconds", "use_shared_server",
           "on_temporary_server", "use_temporary_server"]

IDLE_ENV = "ANALYTICS_SYNC_SERVER_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 600.0
DIRECTORY = "analytics-sync-server"
# Prefect's own temporary server's settings (prefect.server.api.server.SubprocessASGIServer).
EPHEMERAL_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                 "PREFECT__SERVER_FINAL": "1"}
PORT_TRIES = 5  # a free port taken by another process before the server binds it: another

_held: list[int] = []  # users locks, held shared until this process exits
_using: list[str] = []  # the API URL of the temporary server this process uses
_started: list[subprocess.Popen[bytes]] = []  # never waited for: the server outlives us


@dataclass(frozen=True)
class SharedServer:
    """The server a command uses: its API URL (``http://127.0.0.1:<port>/api``) and pid."""

    api_url: str
    pid: int
    idle: float  # seconds it stays after the last command using it
    users: str  # its users lock, in the directory
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

    Raises PrefectStartError when a new server exits or does not answer within
    ``startup_timeout`` s, or ``home`` cannot be written.
    """
    directory = home / DIRECTORY
    try:
        directory.mkdir(parents=True, exist_ok=True)
        start = os.open(directory / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise PrefectStartError(None, exited=f"its home {home} (PREFECT_HOME) cannot be written "
                                             f"({exc.strerror or exc})") from None
    try:
        fcntl.flock(start, fcntl.LOCK_EX)
        found = _recorded(directory)
        if found is not None:
            users = _hold(directory / found.users)  # the server cannot retire while held
            if _healthy(found.api_url):
                return found
            _release(users)  # left alone (module docstring); a new one takes its place
        server = _start(directory, idle, startup_timeout)
        (directory / "server.json").write_text(json.dumps(
            {"pid": server.pid, "api_url": server.api_url, "idle": server.idle,
             "users": server.users}))
        return server
    finally:
        os.close(start)


def _hold(path: Path) -> int:
    """``path`` locked shared until this process exits."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held.append(fd)
    return fd


def _release(fd: int) -> None:
    _held.remove(fd)
    os.close(fd)


def _recorded(directory: Path) -> SharedServer | None:
    try:
        data = json.loads((directory / "server.json").read_text())
        users = str(data["users"])
        if Path(users).name != users:
            return None
        return SharedServer(api_url=str(data["api_url"]), pid=int(data["pid"]),
                            idle=float(data["idle"]), users=users, started=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _healthy(api_url: str, tries: int = 3, timeout: float = 5.0) -> bool:
    import httpx

    for _ in range(tries):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200:
                return True
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(directory: Path, idle: float, startup_timeout: float) -> SharedServer:
    """A new server, answering; raises PrefectStartError naming why it is not."""
    deadline = time.monotonic() + startup_timeout
    log = directory / "server.log"
    for _ in range(PORT_TRIES):
        users = f"users-{secrets.token_hex(6)}.lock"
        held = _hold(directory / users)  # before it starts: it must not see itself unused
        port, logged = _free_port(), log.stat().st_size if log.exists() else 0
        process = _spawn(directory, users, idle, port)
        api_url = f"http://127.0.0.1:{port}/api"
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if _healthy(api_url, tries=1, timeout=2.0):
                    _started.append(process)
                    return SharedServer(api_url=api_url, pid=process.pid, idle=idle,
                                        users=users, started=True)
                time.sleep(0.1)
        except BaseException:  # Ctrl-C while it starts: no server left behind unrecorded
            _end(process)
            raise
        _release(held)
        if process.poll() is None:  # not answering in time
            _end(process)
            raise PrefectStartError(round(startup_timeout))
        said = _said(log, logged)
        if "address already in use" not in said.lower():
            raise PrefectStartError(None, exited=f"it exited with status {process.returncode}"
                                                 f"{': ' + said if said else ''} (its log: {log})")
    raise PrefectStartError(None, exited=f"{PORT_TRIES} free ports were taken before it could "
                                         f"bind them (its log: {log})")


def _end(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def _said(log: Path, since: int) -> str:
    """The last non-empty line the server wrote to ``log`` after byte ``since``."""
    try:
        with log.open("rb") as file:
            file.seek(since)
            lines = file.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")[:300]


# What the server keeps of the command's environment (module docstring): what Python, Prefect
# and TLS need; nothing else (API keys, object-store and cloud credentials stay behind).
_KEPT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "TEMP", "TMP",
         "VIRTUAL_ENV", "SYSTEMROOT")
_KEPT_PREFIXES = ("PREFECT_", "PYTHON", "LC_", "SSL_CERT_", "REQUESTS_CA_BUNDLE",
                  "CURL_CA_BUNDLE", "UV_")


def _server_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in _KEPT or k.startswith(_KEPT_PREFIXES)}


def _spawn(directory: Path, users: str, idle: float, port: int) -> subprocess.Popen[bytes]:
    """Prefect's uvicorn command for its temporary server, run through ``temporary_server.py``."""
    import prefect
    from prefect.settings import get_current_settings

    from analytics_client.orchestration.server import (
        TEMPORARY_SERVER_DEFAULTS,
        TEMPORARY_SERVER_RUNNER,
    )
    from analytics_client.orchestration.temporary_server import (
        IDLE_SECONDS_ENV,
        SHARED_DIR_ENV,
        SHARED_USERS_ENV,
    )

    command = [sys.executable, *TEMPORARY_SERVER_RUNNER, "--app-dir",
               str(prefect.__module_path__.parent),
               "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    env = {**TEMPORARY_SERVER_DEFAULTS, **_server_environment(), **EPHEMERAL_ENV,
           **get_current_settings().to_environment_variables(exclude_unset=True),
           SHARED_DIR_ENV: str(directory), SHARED_USERS_ENV: users, IDLE_SECONDS_ENV: repr(idle)}
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

    from analytics_client.orchestration.server import (
        api_configured,
        bind_temporary_server_to_this_process,
    )

    if api_configured():
        return None
    idle = idle_seconds()
    if idle == 0:
        bind_temporary_server_to_this_process()
        return None
    settings = get_current_settings()
    server = use_shared_server(Path(settings.home), idle,
                               startup_timeout=settings.server.ephemeral.startup_timeout_seconds)
    os.environ["PREFECT_API_URL"] = server.api_url
    _using.append(server.api_url)
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
    how = "started" if server.started else "already running"
    return (f"Prefect temporary server at {server.api_url} ({how}; it stops {server.idle:g} s "
            f"after the last command using it; {IDLE_ENV}=0: with each command)")


def on_temporary_server() -> bool:
    """Whether this process's Prefect API is a temporary server over ``PREFECT_HOME``'s
    database (Prefect's own, or the shared one it uses): one only this machine's runs use."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return not url or url in _using
