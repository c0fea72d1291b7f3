"""One run per pipeline and resource across machines: a Prefect global concurrency limit each.

``lock.py``'s ``flock`` keeps two runs of one pipeline and resource apart on one machine only.
Flow runs of a fan-out land on any worker of the pool, so the flows (flows/main.py) also hold
one slot of the limit ``analytics-sync:<pipeline>--<resource>`` (``limit_name``) per resource,
on the Prefect server every worker talks to. The library without Prefect keeps the file lock
alone; Prefect is imported inside the functions.

Prefect 3's rules this relies on (prefect/server/api/concurrency_limits_v2.py and
prefect/server/services/repossessor.py, 3.9):

- A limit must exist: the server skips a missing one (``create_if_missing`` is deprecated:
  "Limits must be explicitly created"). Each run reads its limits and creates only the missing
  ones, with one slot (creating an existing one makes the server log an ``IntegrityError``
  traceback, once per limit and run); a second run creating one at the same time gets 409 and
  uses it. A run whose answer lacks a limit gives its slots back and fails.
- The slots of all the names are taken in one server transaction, all or none; a taken one
  answers 423 and nothing is held. We fail at once then, as the file lock does, naming the
  busy resources (``concurrency(..., max_retries=0)`` does the same).
- Slots are leased. The holder renews its lease every ``RENEW_SECONDS`` from a thread and
  gives the slots back when the block ends, also when it raises. A process that dies holding
  them (SIGKILL, OOM, a lost pod) stops renewing; the server's repossessor service frees them
  once the lease ran out: within ``LEASE_SECONDS`` (the shortest lease the server grants) plus
  its loop (15 s by default; 5 s in our temporary server, which runs it: server.py).

**A dead holder of this machine.** Waiting out a lease is for holders on other machines. On
this one the kernel's lock (core/lock.py) is the authority: the flows take it before the slots,
so a run that holds a resource's lock knows no live run of its lock directory holds the slot.
The holder writes a note beside the lock (``lock.note_path``): the lease's id, its flow run,
and its process (``lock.Holder``: host, boot id, pid, start time). Prefect's lease carries only
its holder's flow run id (its metadata admits nothing else) and the API has no way to read a
lease back, hence the note. A run refused a slot whose lock it holds reads the note; when its
process has ended (same host; another boot, or no process with that pid and start time), it
releases that lease (the slots it counted come back, the lease is gone) and asks once more. A
lease the server no longer knows (it ran out, or another server's) releases nothing.

**A slot nobody holds, on the temporary server.** A slot can also be taken with no lease the
server knows and no note: a run of an older version, whose temporary server kept its lease in
memory, died holding it (or its note could not be written). Nothing frees such a slot: the
repossessor frees only leases it knows, so every later run was refused, for good. Without
``PREFECT_API_URL``, or on the shared one (shared_server.py), the server is a temporary one over
``PREFECT_HOME``'s SQLite file, which only this machine's runs use, and each of them takes the
resource's file lock before its slot. So a run that holds the lock, finds the slot taken with no
live holder's note, and finds no lease of that limit in the temporary server's lease files
(``PREFECT_HOME/concurrency_leases``, ``server.py``; a lease there is a live holder's, or one
the repossessor frees within seconds) sets the limit's taken slots back to 0 (``active_slots``),
with a warning. A long-lived server is never reset this way: its holder may be a live run of
another machine.

The REST calls are Prefect's client's (increment, renew, release with lease) rather than
``prefect.concurrency.sync.concurrency``: that one acquires through a thread per set of names
that keeps, for the process's life, the client of the first API it met (a second server in
one process, as in tests, would be asked through the first), and it either cancels the run
or only warns when a renewal fails; here a failed renewal is retried at the next turn.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import analytics_client.orchestration.api as prefect_api
from analytics_client.core import lock
from analytics_client.core.errors import PipelineBusyError
from analytics_client.orchestration.shared_server import on_temporary_server
from analytics_client.state.marks import block_name

__all__ = ["LEASE_SECONDS", "RENEW_SECONDS", "limit_name", "resource_slots"]

logger = logging.getLogger(__name__)

# The shortest lease the server grants (it refuses less than 60 s). A live holder renews it every
# RENEW_SECONDS: a renewal or two may fail (an API restart, each try bounded to 2 + 4 s) before
# the server would free the slots under it.
LEASE_SECONDS = 60
RENEW_SECONDS = 10
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

    ``flow_run_id`` is recorded as the lease's holder. A slot held by a run of this machine that
    has ended is taken back when this process holds the resource's file lock (module docstring).
    Raises ``PipelineBusyError`` naming the pipeline, each busy resource and its limit when
    another flow run holds one (nothing is held then), and ``PrefectUnavailableError`` when the
    Prefect API cannot be reached. Giving the slots back is tried once; if the API is gone then,
    the lease runs out instead.
    """
    wanted = sorted(set(resources))
    names = [limit_name(pipeline, r) for r in wanted]
    if not names:
        yield
        return
    _create_missing(names)
    lease = _acquire(pipeline, wanted, names, flow_run_id)
    _write_notes(pipeline, wanted, lease, flow_run_id)
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
        _remove_notes(pipeline, wanted, lease)


def _acquire(pipeline: str, resources: list[str], names: list[str],
             flow_run_id: str | None) -> uuid.UUID:
    """One lease on one slot of every limit (the server takes all or none); its id. Refused,
    it takes back what ended runs of this machine hold, and asks once more."""
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
        try:
            granted = prefect_api.call("-", acquire)
        except PrefectHTTPStatusError as exc:
            if not (_locked(exc) and _take_back(pipeline, resources)):
                raise
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


def _locked(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 423


# --- notes: what this machine's holder of a resource's lock holds on the Prefect server -------


@dataclasses.dataclass(frozen=True)
class _Note:
    lease: uuid.UUID
    flow_run: str | None
    holder: lock.Holder
    since: str

    def to_json(self) -> str:
        return json.dumps({"lease": str(self.lease), "flow_run": self.flow_run,
                           "holder": dataclasses.asdict(self.holder), "since": self.since})

    @classmethod
    def from_json(cls, text: str) -> _Note:
        data = json.loads(text)
        return cls(uuid.UUID(data["lease"]), data.get("flow_run"),
                   lock.Holder(**data["holder"]), str(data.get("since", "?")))


def _write_notes(pipeline: str, resources: list[str], lease: uuid.UUID,
                 flow_run_id: str | None) -> None:
    """Beside each resource's lock, the lease and who holds it (written whole, then renamed)."""
    note = _Note(lease, flow_run_id or None, lock.Holder.this_process(),
                 dt.datetime.now(dt.UTC).isoformat(timespec="seconds")).to_json()
    for resource in resources:
        path = lock.note_path(pipeline, resource)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            partial.write_text(note)
            partial.replace(path)
        except OSError as exc:  # the slot is held all the same; only a fast take-back is lost
            logger.warning("could not write %s (%s): if this run dies, the next one on this "
                           "machine waits up to %d s for its slot", path, exc,
                           LEASE_SECONDS + _REPOSSESSOR_SECONDS)


def _read_note(pipeline: str, resource: str) -> _Note | None:
    try:
        return _Note.from_json(lock.note_path(pipeline, resource).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_notes(pipeline: str, resources: list[str], lease: uuid.UUID) -> None:
    for resource in resources:
        note = _read_note(pipeline, resource)
        if note is not None and note.lease == lease:
            with contextlib.suppress(OSError):
                lock.note_path(pipeline, resource).unlink()


def _take_back(pipeline: str, resources: list[str]) -> bool:
    """Release the leases that ended runs of this machine left on ``resources``; whether any.

    Only for resources whose file lock this process holds: their note's writer holds neither
    the lock nor, if its process has ended, anything else."""
    from prefect.client.orchestration import get_client

    left: dict[uuid.UUID, tuple[_Note, list[str]]] = {}
    for resource in resources:
        if not lock.holds(pipeline, resource):
            continue
        note = _read_note(pipeline, resource)
        if note is not None and note.holder.ended():
            left.setdefault(note.lease, (note, []))[1].append(resource)
    if not left:
        return _reset_orphans(pipeline, resources)

    def release() -> None:
        with get_client(sync_client=True) as client:
            for lease in left:
                client.release_concurrency_slots_with_lease(lease)

    prefect_api.call("-", release)
    for lease, (note, taken) in left.items():
        logger.warning(
            "pipeline %r: took back the Prefect slot of %s from flow run %s (pid %d of this "
            "machine, holding it since %s, has ended without giving it back)", pipeline,
            ", ".join(repr(r) for r in taken), note.flow_run or "?", note.holder.pid,
            note.since)
        _remove_notes(pipeline, taken, lease)
    return True


def _reset_orphans(pipeline: str, resources: list[str]) -> bool:
    """On the temporary server only (module docstring): set the taken slots of the resources
    whose file lock this process holds, and whose note names no live holder, back to 0;
    whether any was taken."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    if not on_temporary_server():
        return False
    orphans = [r for r in resources if lock.holds(pipeline, r)
               and ((note := _read_note(pipeline, r)) is None or note.holder.ended())]
    if not orphans:
        return False
    leased = _leased_limits()
    if leased is None:
        return False

    def reset() -> list[str]:
        taken = []
        with get_client(sync_client=True) as client:
            for resource in orphans:
                name = limit_name(pipeline, resource)
                limit = client.read_global_concurrency_limit_by_name(name)
                if limit.active_slots and str(limit.id) not in leased:
                    client.update_global_concurrency_limit(
                        name, GlobalConcurrencyLimitUpdate(active_slots=0))
                    taken.append(resource)
        return taken

    taken = prefect_api.call("-", reset)
    if taken:
        logger.warning(
            "pipeline %r: took back the Prefect slot of %s, taken by no run alive on this "
            "machine (a run that died holding it, its lease lost with its temporary server)",
            pipeline, ", ".join(repr(r) for r in taken))
    return bool(taken)


def _leased_limits() -> set[str] | None:
    """The ids of the limits a lease in the temporary server's lease files holds slots of
    (Prefect's filesystem lease storage: one ``<lease id>.json`` with its ``resource_ids`` per
    lease); None when a file cannot be read (then nothing is reset)."""
    from prefect.settings import get_current_settings

    found: set[str] = set()
    folder = get_current_settings().home / "concurrency_leases"
    for path in folder.glob("*.json") if folder.is_dir() else ():
        if path.name == "expirations.json":
            continue
        try:
            found.update(str(i) for i in json.loads(path.read_text()).get("resource_ids", ()))
        except (OSError, ValueError, AttributeError):
            return None
    return found


# --- the lease's life ----------------------------------------------------------------------


def _renew(lease: uuid.UUID, names: list[str], stop: threading.Event) -> None:
    """Renew the lease every ``RENEW_SECONDS`` until ``stop``: a renewal or two may fail (an API
    restart) before the server would free the slots."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    with get_client(sync_client=True) as client:
        while not stop.wait(RENEW_SECONDS):
            try:
                client.renew_concurrency_lease(lease, lease_duration=LEASE_SECONDS)
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code in (404, 410):  # the server freed the slots
                    logger.error("the Prefect server freed the slots of %s (their lease ran "
                                 "out); another run of these resources may start now",
                                 ", ".join(names))
                    return
                logger.warning("renewing the lease of %s failed (%s); retrying in %d s",
                               ", ".join(names), exc, RENEW_SECONDS)
            except Exception as exc:  # unreachable API: try again at the next turn
                logger.warning("renewing the lease of %s failed (%s); retrying in %d s",
                               ", ".join(names), exc, RENEW_SECONDS)


def _release(lease: uuid.UUID, names: list[str]) -> None:
    """Give the slots back; a failure is logged, not raised: the lease frees them anyway, and
    the run's own outcome (or error) is what its caller must see."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(lease)
    except Exception as exc:
        logger.warning("could not give back the slots of %s (%s); they are free again within "
                       "about %d s, when their lease runs out", ", ".join(names), exc,
                       LEASE_SECONDS + _REPOSSESSOR_SECONDS)


def _create_missing(names: list[str]) -> None:
    """Create each limit that does not exist, with one slot (an operator's own stays as it is).

    Read first: creating an existing limit costs the server an ``IntegrityError`` traceback in
    its log. Two runs creating one at once: the second gets 409 and uses the first's."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    def create() -> None:
        with get_client(sync_client=True) as client:
            for name in names:
                try:
                    client.read_global_concurrency_limit_by_name(name)
                    continue
                except ObjectNotFound:
                    pass
                with contextlib.suppress(ObjectAlreadyExists):
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=1))

    prefect_api.call("-", create)


def _refusal(pipeline: str, resources: list[str], exc: Exception) -> PipelineBusyError:
    """The error for a refused acquisition: busy resources named, or the API's own reason."""
    if _locked(exc):
        busy = _busy(pipeline, resources) or resources  # all, if the holder ended meanwhile
        what = "; ".join(f"pipeline {pipeline!r} resource {r!r} is already running in another "
                         f"flow run (its Prefect global concurrency limit "
                         f"{limit_name(pipeline, r)!r} has its one slot taken)" for r in busy)
        return PipelineBusyError(
            f"{what}; this run did nothing. Wait for that run to finish. A run that died "
            "holding a slot: on this machine, the next run takes it back at once; on another "
            f"machine, its lease frees it within about {LEASE_SECONDS + _REPOSSESSOR_SECONDS} s "
            "(`prefect gcl inspect NAME` shows the slot)")
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
