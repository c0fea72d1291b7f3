"""Prefect's temporary server, kept out of our process group so that Ctrl-C cannot kill it.

Without ``PREFECT_API_URL`` a flow run starts a temporary Prefect server as a child process. A
terminal sends Ctrl-C to its whole foreground process group: the server died at once, and the
run, asked to stop cleanly, could then neither record its Cancelled state nor exit: Prefect's
client retried the dead server for minutes (386-423 s measured) and the run stayed RUNNING in
the server's database. In a session of its own the server only hears from us: Prefect stops it
at exit, after the run has recorded how it ended.

Prefect offers no option for this; its server module starts the child with ``subprocess.Popen``,
so that module (only) gets a ``subprocess`` whose ``Popen`` starts a new session.
"""

from __future__ import annotations

import functools
import os
import subprocess
from types import ModuleType
from typing import Any

__all__ = ["start_temporary_server_in_its_own_session"]


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
        server.subprocess = _SessionSubprocess()  # type: ignore[assignment]
    return True
