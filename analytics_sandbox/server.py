"""Run the sandbox on a loopback port: in a background thread, or in a child process.

A thread shares the ``World`` with the caller (tests can read and change it directly);
a subprocess has its own interpreter and GIL, so a benchmark measures the client and
not the server competing with it for one core.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from .app import DeliberateReset, FaultRule, SandboxApp, SandboxSettings
from .world import World

__all__ = ["RunningSandbox", "default_http", "serve", "serve_subprocess", "uvicorn_server"]

# The directory holding this package (the checkout, or site-packages): on the child's
# PYTHONPATH, so `python -m analytics_sandbox` finds it even when it is not installed.
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox answering at ``base_url``; its admin endpoints are wrapped as methods.

    ``world`` and ``app`` are the live objects when it runs in a thread of this
    process, None when it runs in a subprocess (``process``).
    """

    base_url: str
    api_key: str
    organization_id: str
    world: World | None = None
    app: SandboxApp | None = None
    process: subprocess.Popen[str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The contract's authentication headers."""
        return {"api_key": self.api_key, "X-Organization-Id": self.organization_id}

    def client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` for this sandbox with the authentication headers set."""
        return httpx.Client(base_url=self.base_url, headers=self.headers, **kwargs)

    def truth(self, resource: str) -> list[dict[str, Any]]:
        """The records of ``resource`` as the API serves them, sorted by id."""
        records: list[dict[str, Any]] = _admin("GET", f"{self.base_url}/_admin/truth/{resource}")
        return records

    def advance(
        self,
        updates: int | Mapping[str, int] = 0,
        creates: int | Mapping[str, int] = 0,
        deletes: int | Mapping[str, int] = 0,
        *,
        resources: Iterable[str] | None = None,
        seed: int | str | None = None,
    ) -> dict[str, dict[str, list[str]]]:
        """Move the world forward; see ``World.advance``."""
        body: dict[str, Any] = {"updates": updates, "creates": creates, "deletes": deletes,
                                "seed": seed}
        if resources is not None:
            body["resources"] = list(resources)
        result: dict[str, dict[str, list[str]]] = _admin(
            "POST", f"{self.base_url}/_admin/advance", body
        )
        return result

    def delete(self, resource: str, ids: Iterable[str]) -> list[str]:
        """Delete these records now; see ``World.delete``."""
        body = {"resource": resource, "ids": list(ids)}
        deleted: list[str] = _admin("POST", f"{self.base_url}/_admin/delete", body)["deleted"]
        return deleted

    def deleted(self, resource: str) -> list[str]:
        """Every id of ``resource`` deleted so far, sorted."""
        ids: list[str] = _admin("GET", f"{self.base_url}/_admin/deleted/{resource}")
        return ids

    def stats(self) -> dict[str, Any]:
        """Request counts by resource and status."""
        stats: dict[str, Any] = _admin("GET", f"{self.base_url}/_admin/stats")
        return stats

    def set_faults(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> None:
        """Replace the scripted fault queue."""
        payload = [FaultRule.parse(rule) for rule in rules]
        _admin("POST", f"{self.base_url}/_admin/faults", [_rule_json(r) for r in payload])

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change runtime settings; returns them all."""
        settings: dict[str, Any] = _admin("POST", f"{self.base_url}/_admin/settings", changes)
        return settings


def _rule_json(rule: FaultRule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in rule.__dataclass_fields__}


def _admin(method: str, url: str, body: Any = None) -> Any:
    response = httpx.request(method, url, json=body, timeout=30)
    if response.is_error:
        raise RuntimeError(f"sandbox admin {method} {url} failed: {response.text[:300]}")
    return response.json()


def default_http() -> str:
    """``httptools`` when it is installed (several times faster), else ``h11``."""
    return "httptools" if find_spec("httptools") is not None else "h11"


class _HideDeliberateResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DeliberateReset))


def uvicorn_server(
    app: SandboxApp, *, http: str | None = None, quiet: bool = True
) -> uvicorn.Server:
    """A uvicorn server for ``app`` without access logs; ``quiet`` leaves logging config alone."""
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDeliberateResets) for f in error_log.filters):
        error_log.addFilter(_HideDeliberateResets())
    config = uvicorn.Config(
        app,
        http=http or default_http(),
        lifespan="off",
        access_log=False,
        log_level="warning",
        # In a thread of someone else's process, do not reconfigure their logging.
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        server_header=False,
        date_header=False,  # the app sends its own Date, which a fault may skew
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket; port 0 picks a free one, read back with ``getsockname``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Name the protocol: asyncio sets TCP_NODELAY on accepted sockets only when proto is
    # IPPROTO_TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """The base URL a bound socket answers at."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def serve(
    world: World | None = None,
    settings: SandboxSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    http: str | None = None,
) -> Iterator[RunningSandbox]:
    """Serve the sandbox from a daemon thread for the duration of the ``with`` block."""
    app = SandboxApp(world, settings)
    sock = bind(host, port)
    server = uvicorn_server(app, http=http)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sandbox-uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start; see the uvicorn log")
            time.sleep(0.002)
        yield RunningSandbox(
            base_url=url_of(sock),
            api_key=app.settings.api_key,
            organization_id=app.settings.organization_id,
            world=app.world,
            app=app,
        )
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _flags(options: Mapping[str, Any]) -> list[str]:
    args: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + name.replace("_", "-"))
        elif name == "faults":
            rules = [_rule_json(FaultRule.parse(rule)) for rule in value]
            args += [flag, json.dumps(rules)]
        elif name == "counts":
            for resource, count in value.items():
                args += ["--count", f"{resource}={count}"]
        elif value is not None:
            args += [flag, str(value)]
    return args


@contextlib.contextmanager
def serve_subprocess(
    *, startup_timeout: float = 60.0, own_session: bool = False, **cli_options: Any
) -> Iterator[RunningSandbox]:
    """Run ``python -m analytics_sandbox serve --port 0`` with ``cli_options`` as flags.

    ``omit_meta=True`` becomes ``--omit-meta``, ``late_visibility=False`` becomes
    ``--no-late-visibility``, ``counts={"deals": 50}`` becomes ``--count deals=50``,
    ``faults=[...]`` a JSON list. The child is killed when the block exits.

    ``own_session``: the child leaves our process group, so that Ctrl-C in a terminal (sent to
    the whole foreground group) reaches only us, and the run can stop cleanly against an API
    that is still there; on Linux it is also told to die with us, so it cannot be orphaned.
    """
    cli_options.setdefault("port", 0)
    args = [sys.executable, "-m", "analytics_sandbox", "serve", *_flags(cli_options)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env,
                               preexec_fn=_own_session if own_session else None)
    try:
        info = _announcement(process, startup_timeout)
        sandbox = RunningSandbox(
            base_url=info["base_url"],
            api_key=info["api_key"],
            organization_id=info["organization_id"],
            process=process,
        )
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                httpx.get(f"{sandbox.base_url}/_admin/health", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield sandbox
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _own_session() -> None:
    """In the child before exec: a session of its own, and SIGTERM when its parent dies."""
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _announcement(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The JSON line the child prints once it listens, read without blocking forever."""
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise RuntimeError(f"the sandbox subprocess did not start within {timeout} s") from None
    if not line:
        raise RuntimeError(f"the sandbox subprocess exited with code {process.wait()}")
    announcement: dict[str, Any] = json.loads(line)
    return announcement
