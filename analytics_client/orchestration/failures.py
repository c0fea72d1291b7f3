"""What a failed run says where the operator looks: its state message, and no traceback.

The flow run's state message is what Prefect's UI lists, what ``prefect flow-run inspect``
prints and what an automation's alert body carries (``{{ flow_run.state.message }}``), so it
holds the cause itself, not a pointer to the logs: ``5 of 5 resources failed: tags, deals,
pages, tasks, users: HTTP 401 from api.example.com: check the API key ...``. Resources that
failed alike (the same ``ResourceError.headline``: status, host and what to do, core/errors.py)
are named together under one cause, so five resources refused for one bad key make one line.

A failure of our own hierarchy (``AnalyticsSyncError``) is expected: its message says what,
where and what to do, and a traceback only buries it (``--debug`` or ANALYTICS_SYNC_DEBUG=1
keeps them). Prefect logs one anyway when a deployed run ends Failed (its engine re-raises the
run's result: "Engine execution exited with unexpected exception") or when the flow raises
("Encountered exception during execution"); ``quiet_expected_tracebacks`` removes the traceback
from those records, not the records. Any other exception is unexpected and keeps its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from analytics_client.core.debugging import debugging
from analytics_client.core.errors import AnalyticsSyncError, ResourceError, ResourceFailed

__all__ = ["MAX_REASON", "failure_reason", "failed_message", "quiet_expected_tracebacks"]

MAX_REASON = 300  # characters of one cause in the state message (an alert must stay readable)

# Prefect's loggers that attach a finished or failed run's exception to a record.
_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.engine", "prefect.flow_engine")


def failure_reason(resource: str, error: str | None, cause: BaseException | None) -> str:
    """One resource's cause without its name: the error's ``headline`` when it is ours, else the
    summary's error text with a leading ``<resource>: `` taken off. Already redacted (the
    errors never hold a secret); cut to ``MAX_REASON`` characters."""
    if isinstance(cause, ResourceFailed):
        cause = cause.cause
    if isinstance(cause, ResourceError):
        text = cause.headline
    else:
        text = error or (f"{type(cause).__name__}: {cause}" if cause is not None else "failed")
        text = text.removeprefix(f"{resource}: ")
    text = " ".join(text.split())  # one line
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


def failed_message(failures: Sequence[tuple[str, str]], total: int) -> str:
    """The run's state message for ``failures``, ``(resource, reason)`` in run order, out of
    ``total`` resources: ``N of M resources failed: a, b: reason; c: other reason``. Causes
    appear in the order of their first resource; each resource once."""
    groups: dict[str, list[str]] = {}
    for resource, reason in failures:
        groups.setdefault(reason, []).append(resource)
    causes = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in groups.items())
    return f"{len(failures)} of {total} resources failed: {causes}"


class _NoExpectedTraceback(logging.Filter):
    """Takes the traceback off a record whose exception is one of ours (module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not debugging():
            exc = record.exc_info[1]
            if isinstance(exc, AnalyticsSyncError):
                record.exc_info = None
                record.exc_text = None
                record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
                record.args = None
        return True


_FILTER = _NoExpectedTraceback()


def quiet_expected_tracebacks(loggers: Iterable[str] = _LOGGERS) -> None:
    """Install the filter on Prefect's run loggers (idempotent); done by the flows at import."""
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
