"""One run per pipeline and resource across machines: a Prefect global concurrency limit each.

``lock.py``'s ``flock`` keeps two runs of one pipeline and resource apart on one machine only.
Flow runs of a fan-out land on any worker of the pool, so the flows (flows/main.py) also hold
one slot of the limit ``analytics-sync:<pipeline>--<resource>`` (``limit_name``) per resource,
on the Prefect server every worker talks to. The library without Prefect keeps the file lock
alone; Prefect is imported inside the functions.

Prefect 3's rules this relies on (prefect/server/api/concurrency_limits_v2.py and
prefect/server/services/repossessor.py, 3.9):

- A limit must exist: the server skips a missing one (``create_if_missing`` is deprecated:
  "Limits must be explicitly created"), and ``concurrency(..., strict=True)`` only makes
  that an error on the client. The first run that needs a limit creates it with one slot; a
  second creating it at the same time gets 409 and uses it. A run whose answer lacks a limit
  gives its slots back and fails.
- The slots of all the names are taken in one server transaction, all or none; a taken one
  answers 423 and nothing is held. We fail at once then, as the file lock does, naming the
  busy resources (``concurrency(..., max_retries=0)`` does the same).
- Slots are leased. The holder renews its lease every quarter of ``LEASE_SECONDS`` from a
  thread and gives the slots back when the block ends, also when it raises. A process that
  dies holding them (SIGKILL, OOM, a lost pod) stops renewing; the server's repossessor
  service (every 15 s) frees them once the lease ran out. Leases under 60 s are refused.

The REST calls are Prefect's client's (increment, renew, release with lease) rather than
``prefect.concurrency.sync.concurrency``: that one acquires through a thread per set of names
that keeps, for the process's life, the client of the first API it met (a second server in
one process, as in tests, would be asked through the first), and it either cancels the run
or only warns when a renewal fails; here a failed renewal is retried at the next turn.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import analytics_client.orchestration.api as prefect_api
from analytics_client.core.errors import PipelineBusyError
from analytics_client.state.marks import block_name

__all__ = ["LEASE_SECONDS", "limit_name", "resource_slots"]

logger = logging.getLogger(__name__)

# A dead holder's slot is free again within this plus the repossessor's 15 s loop; a live one
# renews every 30 s, so a slow or briefly unreachable server does not cost it the slot.
LEASE_SECONDS = 120
_REPOSSESSOR_SECONDS = 15  # PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS' default


def limit_name(pipeline: str, resource: str) -> str:
    """``analytics-sync:<pipeline>--<resource>``: the mark block's name (lowercase letters,
    digits, dashes; state.block_name), so it avoids the characters limit names refuse
    (``/ % & > <``) and means the same pair."""
    return f"analytics-sync:{block_name(pipeline, resource)}"


@contextlib.contextmanager
def resource_slots(pipeline: str, resources: Iterable[str],
                   flow_run_id: str | None = None) -> Iterator[None]:
    """Hold the one slot of each resource's limit for the block, or fail at once.

    ``flow_run_id`` is recorded as the lease's holder. Raises ``PipelineBusyError`` naming the
    pipeline, each busy resource and its limit when another flow run holds one (nothing is
    held then), and ``PrefectUnavailableError`` when the Prefect API cannot be reached.
    Giving the slots back is tried once; if the API is gone then, the lease runs out instead.
    """
    wanted = sorted(set(resources))
    names = [limit_name(pipeline, r) for r in wanted]
    if not names:
        yield
        return
    _create_missing(names)
    lease = _acquire(pipeline, wanted, names, flow_run_id)
    stop = threading.Event()
    renewal = threading.Thread(target=contextvars.copy_context().run,
                               args=(_renew, lease, names, stop), daemon=True,
                               name=f"analytics-sync-lease-{lease}")
    renewal.start()
    try:
        yield
    finally:
        stop.set()
        renewal.join(timeout=30)  # a renewal under way ends within the bounded retries
        _release(lease, names)


def _acquire(pipeline: str, resources: list[str], names: list[str],
             flow_run_id: str | None) -> uuid.UUID:
    """One lease on one slot of every limit (the server takes all or none); its id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.exceptions import PrefectHTTPStatusError

    holder = (ConcurrencyLeaseHolder(type="flow_run", id=uuid.UUID(flow_run_id))
              if flow_run_id else None)

    def acquire() -> dict[str, Any]:
        with get_client(sync_client=True) as client:
            response = client.increment_concurrency_slots_with_lease(
                names, slots=1, mode="concurrency", lease_duration=LEASE_SECONDS,
                holder=holder)
            return dict(response.json())

    try:
        granted = prefect_api.call("-", acquire)
    except PrefectHTTPStatusError as exc:
        raise _refusal(pipeline, resources, exc) from None
    lease = uuid.UUID(str(granted["lease_id"]))
    if len(granted.get("limits") or []) != len(names):  # a limit deleted since its creation
        _release(lease, names)
        raise PipelineBusyError(
            f"pipeline {pipeline!r}: a Prefect global concurrency limit of {', '.join(names)} "
            "was deleted while this run started; this run did nothing. Run it again (it "
            "creates the limit)")
    return lease


def _renew(lease: uuid.UUID, names: list[str], stop: threading.Event) -> None:
    """Renew the lease every quarter of its length until ``stop``: a renewal or two may fail
    (an API restart) before the server would free the slots."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    with get_client(sync_client=True) as client:
        while not stop.wait(LEASE_SECONDS / 4):
            try:
                client.renew_concurrency_lease(lease, lease_duration=LEASE_SECONDS)
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code in (404, 410):  # the server freed the slots
                    logger.error("the Prefect server freed the slots of %s (their lease ran "
                                 "out); another run of these resources may start now",
                                 ", ".join(names))
                    return
                logger.warning("renewing the lease of %s failed (%s); retrying in %d s",
                               ", ".join(names), exc, LEASE_SECONDS // 4)
            except Exception as exc:  # unreachable API: try again at the next turn
                logger.warning("renewing the lease of %s failed (%s); retrying in %d s",
                               ", ".join(names), exc, LEASE_SECONDS // 4)


def _release(lease: uuid.UUID, names: list[str]) -> None:
    """Give the slots back; a failure is logged, not raised: the lease frees them anyway, and
    the run's own outcome (or error) is what its caller must see."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(lease)
    except Exception as exc:
        logger.warning("could not give back the slots of %s (%s); they are free again within "
                       "%d s, when their lease runs out", ", ".join(names), exc,
                       LEASE_SECONDS + _REPOSSESSOR_SECONDS)


def _create_missing(names: list[str]) -> None:
    """Create each limit with one slot unless it exists (an operator's own stays as it is)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists

    def create() -> None:
        with get_client(sync_client=True) as client:
            for name in names:
                with contextlib.suppress(ObjectAlreadyExists):
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=1))

    prefect_api.call("-", create)


def _refusal(pipeline: str, resources: list[str], exc: Exception) -> PipelineBusyError:
    """The error for a refused acquisition: busy resources named, or the API's own reason."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 423:
        busy = _busy(pipeline, resources) or resources  # all, if the holder ended meanwhile
        what = "; ".join(f"pipeline {pipeline!r} resource {r!r} is already running in another "
                         f"flow run (its Prefect global concurrency limit "
                         f"{limit_name(pipeline, r)!r} has its one slot taken)" for r in busy)
        return PipelineBusyError(
            f"{what}; this run did nothing. Wait for that run to finish; a run that died "
            f"holding a slot gives it back within {LEASE_SECONDS + _REPOSSESSOR_SECONDS} s "
            "(see `prefect gcl inspect NAME`)")
    return PipelineBusyError(
        f"pipeline {pipeline!r}: could not take the Prefect global concurrency limits "
        f"{', '.join(limit_name(pipeline, r) for r in resources)} ({exc}); this run did "
        "nothing. Each needs limit 1 and must be enabled: `prefect gcl inspect NAME`, "
        "`prefect gcl update NAME --limit 1`")


def _busy(pipeline: str, resources: list[str]) -> list[str]:
    """The resources whose limit has no free slot now (one read per limit)."""
    from prefect.client.orchestration import get_client

    def read() -> list[Any]:
        with get_client(sync_client=True) as client:
            return [client.read_global_concurrency_limit_by_name(limit_name(pipeline, r))
                    for r in resources]

    try:
        limits = read()
    except Exception:  # only to name the busy ones; the refusal stands anyway
        return []
    return [r for r, limit in zip(resources, limits, strict=True)
            if limit.active and limit.active_slots >= limit.limit]
