"""How a process of ours runs Prefect: its settings, and its temporary server's session.

This module never talks to Prefect's API (``orchestration/api.py`` does: calls, outages, block
documents); it sets up the process Prefect runs in. Two things:

**Settings, before Prefect is imported.** Prefect reads some settings once, at import, so the
flows import this module before ``prefect`` (``import analytics_client.orchestration.server``); that
import applies ``PREFECT_DEFAULTS`` with ``os.environ.setdefault``: a value the user set wins.

* ``PREFECT_SERVER_ANALYTICS_ENABLED=false``: no telemetry calls from an offline temporary server.
* ``PREFECT_LOGGING_EXTRA_LOGGERS=analytics_client``: the library's log records (retries,
  progress) shipped to the flow run's logs...
* ``PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW=ignore``: ...and the same records outside a flow
  run (the ``check`` command) stay local, without a warning.
* ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180``: Prefect waits 20 s for its temporary
  server; a first start (database migrations) on a busy 2-core machine takes longer. Waiting
  longer costs nothing when it starts sooner.

**The temporary server, ours.** Without ``PREFECT_API_URL`` a flow run starts a temporary
Prefect server as a child process (``bind_temporary_server_to_this_process``):

* *In a session of its own.* A terminal sends Ctrl-C to its whole foreground process group: the
  server died at once, and the run, asked to stop cleanly, could then neither record its
  Cancelled state nor exit: Prefect's client retried the dead server for minutes (386-423 s
  measured) and the run stayed RUNNING in the server's database. In a session of its own the
  server only hears from us: Prefect stops it at exit, after the run has recorded how it ended.
* *Ending with the run, however the run ends* (``temporary_server.py``): a SIGKILLed run's
  server used to stay, reparented to init, ~200 MiB, for as long as the machine ran.
* *Freeing the slots of dead runs.* Prefect's temporary server kept concurrency leases in its
  memory and ran no repossessor: a killed run's slot (locks.py) stayed taken for good. Ours
  keeps them in files under ``PREFECT_HOME`` (``TEMPORARY_SERVER_DEFAULTS``: the next run's
  server knows them) and runs the repossessor every 5 s.

Prefect offers no option for any of this; its server module starts the child with
``subprocess.Popen``, so that module (only) gets a ``subprocess`` whose ``Popen`` does it.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["PREFECT_DEFAULTS", "TEMPORARY_SERVER_DEFAULTS", "TEMPORARY_SERVER_RUNNER",
           "api_configured", "bind_temporary_server_to_this_process", "set_prefect_defaults"]

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "analytics_client",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


# The temporary server's own settings (a value the user set wins): leases in files under
# PREFECT_HOME, shared by every temporary server of that home, and freed 5 s after they ran out.
TEMPORARY_SERVER_DEFAULTS = {
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE":
        "prefect.server.concurrency.lease_storage.filesystem",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "5",
}

# How our processes run Prefect's uvicorn server: ``python <TEMPORARY_SERVER_RUNNER> <uvicorn's
# arguments>`` runs temporary_server.py as a file (importing it would import the library).
TEMPORARY_SERVER_RUNNER = ["-c", "import runpy; runpy.run_path("
                           f"{str(Path(__file__).with_name('temporary_server.py'))!r}, "
                           "run_name='__main__')"]


def set_prefect_defaults() -> None:
    """Apply ``PREFECT_DEFAULTS`` where the environment has no value (done on import)."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)


set_prefect_defaults()


class _TemporaryServerSubprocess(ModuleType):
    """The ``subprocess`` module, but ``Popen`` starts Prefect's uvicorn server as ours: in a
    session of its own, through ``temporary_server.py``, its stdin a pipe only this process
    holds, with ``TEMPORARY_SERVER_DEFAULTS``."""

    def __init__(self) -> None:
        super().__init__("subprocess")

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    @functools.wraps(subprocess.Popen)
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:  # noqa: N802 - its name
        kwargs.setdefault("start_new_session", True)
        command = list(kwargs.pop("args", None) or args[0])
        if command[1:3] == ["-m", "uvicorn"]:
            command[1:3] = TEMPORARY_SERVER_RUNNER
            kwargs["stdin"] = subprocess.PIPE
            kwargs["env"] = {**TEMPORARY_SERVER_DEFAULTS,
                             **(kwargs.get("env") or os.environ)}
        return subprocess.Popen(command, *args[1:], **kwargs)


def api_configured() -> bool:
    """Whether ``PREFECT_API_URL`` names a server (the environment, or a Prefect profile)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url or os.environ.get("PREFECT_API_URL"))


def bind_temporary_server_to_this_process() -> bool:
    """When this process will start Prefect's temporary server, make it ours (module docstring):
    its own session, ending with this process, freeing the slots of dead runs.

    True when it applies (no ``PREFECT_API_URL``); against a long-lived server nothing changes
    and Prefect's server code is not even imported.
    """
    if api_configured():
        return False
    from prefect.server.api import server

    if not isinstance(server.subprocess, _TemporaryServerSubprocess):
        server.subprocess = _TemporaryServerSubprocess()
    return True
