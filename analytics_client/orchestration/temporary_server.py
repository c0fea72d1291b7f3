"""Prefect's temporary server as our runs start it: it ends with its run and frees dead leases.

Not imported by the library: ``server.py`` has Prefect start the server's process with
``python -c <runpy of this file> <uvicorn's arguments>`` (importing it as a module would import
the whole library first, a second of CPU on every start). In that process it does two things,
then hands over to uvicorn exactly as Prefect would have run it:

* **It ends when the run ends, however the run ends.** The run holds the write end of a pipe
  that is this process's stdin and never writes to it. When the run's process is gone (exit,
  crash, SIGKILL, OOM) the kernel closes that end, the read here returns EOF, and the server
  stops as on SIGTERM (uvicorn's graceful shutdown), or exits outright ``STOP_SECONDS`` later.
  A SIGKILLed run's server used to stay, reparented to init, for as long as the machine ran.
  (``PR_SET_PDEATHSIG`` would signal it when the *thread* that started it ends, which in Prefect
  is not always the main one.)
* **It runs Prefect's repossessor**, which frees the slots of expired leases. Prefect runs it
  only in a long-lived server; with the temporary server a dead run's slot stayed taken for
  good. ``server.py`` also keeps the leases in files under ``PREFECT_HOME`` (they were in the
  memory of the server that granted them, gone with it) and shortens the repossessor's loop.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

STOP_SECONDS = 20.0  # a graceful stop takes about 2 s; after this the process exits anyway


def _stop_when_the_run_is_gone(fd: int) -> None:
    while os.read(fd, 1024):  # nothing is ever written; b"" is EOF: the run's end is closed
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_SECONDS)
    os._exit(1)


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
    threading.Thread(target=_stop_when_the_run_is_gone, args=(sys.stdin.fileno(),), daemon=True,
                     name="analytics-sync-run-watch").start()
    _run_the_repossessor()
    sys.argv = ["uvicorn", *sys.argv[1:]]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
