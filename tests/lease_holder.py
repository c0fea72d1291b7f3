"""A run's file lock and Prefect slots in a process of its own, for tests that kill it.

    python tests/lease_holder.py hold PIPELINE RESOURCE...  # "in after S s", then holds
    python tests/lease_holder.py once PIPELINE RESOURCE...  # in and out, or "busy: ...", exit 1
    python tests/lease_holder.py wait PIPELINE RESOURCE...  # asks every second until it is in

Without ``PREFECT_API_URL`` it starts Prefect's temporary server as the command line does.
"""

from __future__ import annotations

import sys
import time

from analytics_client.orchestration.server import bind_temporary_server_to_this_process

# isort: split
from analytics_client.core.errors import PipelineBusyError
from analytics_client.core.lock import pipeline_lock
from analytics_client.orchestration.locks import resource_slots


def main() -> int:
    mode, pipeline, *resources = sys.argv[1:]
    bind_temporary_server_to_this_process()
    started = time.monotonic()
    while True:
        try:
            with pipeline_lock(pipeline, resources), resource_slots(pipeline, resources):
                print(f"in after {time.monotonic() - started:.1f} s", flush=True)
                if mode == "hold":
                    time.sleep(3600)
                return 0
        except PipelineBusyError as exc:
            if mode != "wait":
                print(f"busy: {exc}", flush=True)
                return 1
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
