"""Requests of a run stopped (Ctrl-C) part-way and of its resume, against a full read.

    uv run python bench/resume_after_stop.py [latency_ms] [share ...]

The sandbox's default world (27,250 records) with ``latency_ms`` per page (default 20: the
walks split as against a real API), the default config and timing. A full read first; then,
per share, a fresh lake whose first run is stopped as the request at that share of the full
read leaves (the stop flag Ctrl-C sets), and a resume. Prints each run's requests and checks the
resumed tables against the truth. Issue 23's acceptance: stopped run + resume <= 1.15 x a full
read; docs/incremental.md ("Resuming a stopped run") has the figures.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics_client.core.stop import on_signals  # noqa: E402
from analytics_client.state.marks import MemoryMarkStore  # noqa: E402
from analytics_sandbox import SandboxSettings, World, serve  # noqa: E402
from tests.support import assert_lake_equals_truth, sync  # noqa: E402


class Counting(httpx.HTTPTransport):
    """Counts the API's requests; asks the run to stop as request ``stop_at`` leaves."""

    def __init__(self, stop_at: int | None = None, flag: Any = None) -> None:
        super().__init__()
        self.sent, self.stop_at, self.flag = 0, stop_at, flag
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/"):
            with self._lock:
                self.sent += 1
                if self.sent == self.stop_at:
                    self.flag.request("bench: Ctrl-C")
        return super().handle_request(request)


def main(latency_ms: float, shares: list[float]) -> None:
    with serve(World(seed=0), SandboxSettings(latency_ms=latency_ms)) as sandbox, \
            tempfile.TemporaryDirectory() as directory:
        full = Counting()
        assert all(s.status == "ok" for s in sync(sandbox, Path(directory) / "full",
                                                  transport=full).values())
        print(f"full read: {full.sent:,} requests", flush=True)
        for share in shares:
            lake, marks = Path(directory) / f"lake-{share}", MemoryMarkStore()
            with on_signals() as flag:
                first = Counting(round(share * full.sent), flag)
                stopped = sync(sandbox, lake, marks, transport=first)
            pages = sum(s.pages for s in stopped.values())
            resume = Counting()
            summaries = sync(sandbox, lake, marks, transport=resume)
            assert all(s.status == "ok" for s in summaries.values()), summaries
            assert_lake_equals_truth(sandbox, lake)
            total = first.sent + resume.sent
            print(f"stopped at {share:.0%}: {first.sent:,} requests ({pages:,} pages committed), "
                  f"resume {resume.sent:,}: together {total:,} = {total / full.sent:.3f} x a "
                  "full read", flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0,
         [float(a) for a in sys.argv[2:]] or [0.2, 0.5, 0.8])
