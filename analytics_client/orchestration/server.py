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

**The temporary server in its own session.** Without ``PREFECT_API_URL`` a flow run starts a
temporary Prefect server as a child process. A terminal sends Ctrl-C to its whole foreground
process group: the server died at once, and the run, asked to stop cleanly, could then neither
record its Cancelled state nor exit: Prefect's client retried the dead server for minutes
(386-423 s measured) and the run stayed RUNNING in the server's database. In a session of its
own the server only hears from us: Prefect stops it at exit, after the run has recorded how it
ended.

Prefect offers no option for this; its server module starts the child with ``subprocess.Popen``,
so that module (only) gets a ``subprocess`` whose ``Popen`` starts a new session.
"""

from __future__ import annotations

import functools
import os
import subprocess
from types import ModuleType
from typing import Any

__all__ = ["PREFECT_DEFAULTS", "set_prefect_defaults", "start_temporary_server_in_its_own_session"]

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "analytics_client",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def set_prefect_defaults() -> None:
    """Apply ``PREFECT_DEFAULTS`` where the environment has no value (done on import)."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)


set_prefect_defaults()


class _SessionSubprocess(ModuleType):
    """The ``subprocess`` module, but every ``Popen`` starts a new session."""

    def __init__(self) -> None:
        super().__init__("subprocess")

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    @functools.wraps(subprocess.Popen)
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:  # noqa: N802 - its name
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(*args, **kwargs)


def start_temporary_server_in_its_own_session() -> bool:
    """When this process will start Prefect's temporary server, start it in its own session.

    True when it applies (no ``PREFECT_API_URL``); against a long-lived server nothing changes
    and Prefect's server code is not even imported.
    """
    from prefect.settings import get_current_settings

    if get_current_settings().api.url or os.environ.get("PREFECT_API_URL"):
        return False
    from prefect.server.api import server

    if not isinstance(server.subprocess, _SessionSubprocess):
        server.subprocess = _SessionSubprocess()
    return True
