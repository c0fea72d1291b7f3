"""Stopping a run on request: Ctrl-C or SIGTERM ends each resource after its current page.

A stopped resource commits the records it has fetched with the mark they allow, exactly as when
a page fails, so a rerun resumes from there and ends equal to the API. What a stop must never
do is wait: the flag wakes retry and rate-limit sleeps at once, and no new request is sent once
it is set (``ApiClient`` checks it). A second signal is the impatient user: the default action
(KeyboardInterrupt, or death by SIGTERM) happens then; Delta commits are atomic, so even that
loses nothing that was committed.

One flag per process: signals are process-wide, and a run's client, walks and threads all read
the flag installed for that run (``current()``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Generator, Iterator
from types import FrameType
from typing import Any, TypeVar

import stamina

from analytics_client.core.errors import RunStopped

__all__ = ["StopFlag", "again_inside_the_flow_run", "current", "on_signals", "until_stopped"]

T = TypeVar("T")
Handler = Any  # what signal.getsignal returns: a callable, SIG_DFL, SIG_IGN or None


class StopFlag:
    """Set once when the run should stop; every sleep of the run waits on it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str, signum: int | None = None) -> None:
        if not self._event.is_set():
            self.reason, self.signum = reason, signum
        self._event.set()

    def sleep(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless a stop comes first; True when stopped.

        In stamina's test mode nothing sleeps, as stamina's own waits do not.
        """
        if seconds <= 0 or stamina.is_testing():
            return self.requested
        return self._event.wait(seconds)

    def check(self, resource: str) -> None:
        """Raise ``RunStopped`` once a stop was requested (before a request is sent)."""
        if self.requested:
            raise RunStopped(resource, self.reason or "stop requested")


_current = StopFlag()
_outer: StopFlag | None = None  # the flag of the on_signals block in progress, if any


def current() -> StopFlag:
    """The flag of the run in progress in this process (a fresh one outside ``on_signals``)."""
    return _current


@contextlib.contextmanager
def on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[StopFlag]:
    """Within the block, the first of ``signals`` asks the run to stop; a second one acts as
    if we had installed nothing. Call it from the main thread (Python's rule for handlers)."""
    global _current, _outer
    flag, previous_flag, previous_outer = StopFlag(), _current, _outer
    _current, _outer = flag, flag
    try:
        with _handlers(flag, signals):
            yield flag
    finally:
        _current, _outer = previous_flag, previous_outer


@contextlib.contextmanager
def again_inside_the_flow_run(
        signals: tuple[int, ...] = (signal.SIGTERM,)) -> Iterator[StopFlag | None]:
    """Our handlers again, over the ones Prefect's engine installs for a flow run.

    Prefect replaces the SIGTERM handler while a flow runs (its handler crashes the run).
    Started from our command line (inside ``on_signals``), the flow puts ours back on top,
    sharing the command line's flag; a second signal then reaches Prefect's. Anywhere else (a
    deployment's runner cancels a run through Prefect's handler) nothing changes.
    """
    if _outer is None or threading.current_thread() is not threading.main_thread():
        yield None
        return
    with _handlers(_outer, signals):
        yield _outer


@contextlib.contextmanager
def _handlers(flag: StopFlag, signals: tuple[int, ...]) -> Iterator[None]:
    previous: dict[int, Handler] = {s: signal.getsignal(s) for s in signals}

    def handle(signum: int, frame: FrameType | None) -> None:
        if flag.requested:  # the second signal: restore and deliver it again
            for s, h in previous.items():
                signal.signal(s, h)
            signal.raise_signal(signum)
            return
        name = signal.Signals(signum).name
        flag.request(name, signum)
        # stderr, not a logger: the user must see it even if logging is quiet or broken.
        print(f"\n{name} received: stopping after the current page of each resource and "
              "committing what was fetched (send it again to stop at once)", file=sys.stderr,
              flush=True)

    for s in signals:
        signal.signal(s, handle)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def until_stopped(pages: Iterator[T], flag: StopFlag, *,
                  drain: bool = False) -> Generator[T, None, None]:
    """``pages`` until the flag is set; the page in hand is still delivered, no further one;
    with ``drain``, every page already fetched too (a sliced walk's queue, up to two pages per
    slot of the run: a resume would fetch them again), until the read asks for a request.

    A walk that raised ``RunStopped`` (its request was refused because of the stop) simply
    ends. ``pages`` is closed on the way out, so the threads of a sliced walk stop with it.
    Only a read whose every further page needs a request may be drained: the client refuses
    it (``RunStopped``), so no request is sent after the stop either way.
    """
    try:
        for item in pages:
            yield item
            if flag.requested and not drain:
                return
    except RunStopped:
        return
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
