"""A tiny hostile loopback API: serves records as raw JSON text, byte for byte as a test wrote it.

The bundled sandbox serialises records itself, so it can only send what ``json.dumps`` writes.
Real APIs send more: ``NaN``, lone surrogate escapes (``"\\ud83d"``), integers beyond 64 bits,
decimals longer than a float, exponent forms, timestamps with any offset. Here a test hands
over each record as the exact JSON text to send; the server never re-serialises it. It reads
the text once (stdlib ``json``, which accepts all of the above) only to learn the record's id
and cursor for filtering and sorting.

Implements the API contract's paging for ``GET /v1/<resource>`` (shared/analytics-api.md):
``page[number]`` (1-based), ``page[size]`` (1..100), ``filter[updated_at][gte]`` (compared as
an instant, offsets honoured), ``sort`` (``id``, ``updated_at``, ``-updated_at``; ties by id
ascending, then by the order the test gave). Any ``api_key`` is accepted; an
``X-Organization-Id`` is neither required nor checked (an API other than the contract's has no
organization: issue 22, item 5). A page past the end is ``{"data": []}``.

    with RecordServer() as server:
        server.put("events", ['{"id":"e1","updated_at":"2026-03-01T10:00:00Z"}'])
        ... run_sync against server.base_url ...
        server.put("events", [...])   # the next run sees this set

``on_request(n, params)`` (optional) runs before the n-th request (1-based) is answered, so a
test can change the records between two pages; ``served`` lists the ids each answer carried;
``headers`` keeps every request's headers as received (what a hostile server would collect).

Its own timestamp reader (``instant_ns``) is independent of the library's: integer arithmetic
on the ISO-8601 text, so instants beyond year 9999 once in UTC still sort correctly.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tests.loopback import LoopbackServer, Reply, Request

__all__ = ["RecordServer", "Served", "instant_ns"]

_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[Tt](?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?:[.,](?P<f>\d{1,9}))?(?P<z>[Zz]|[+-]\d{2}:?\d{2})$"
)
_DAY_NS = 86_400 * 10**9
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def instant_ns(text: object) -> int | None:
    """An ISO-8601 timestamp with a zone as epoch nanoseconds; None if it is not one.

    Integer arithmetic only, so ``9999-12-31T23:00:00-05:00`` (year 10000 in UTC) and
    ``0001-01-01T00:00:00+01:00`` (year 0 in UTC) are instants too.
    """
    if not isinstance(text, str):
        return None
    match = _ISO.match(text)
    if match is None:
        return None
    g = match.groupdict()
    try:
        day = dt.date(int(g["y"]), int(g["mo"]), int(g["d"])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    h, mi, s = int(g["h"]), int(g["mi"]), int(g["s"])
    if h > 23 or mi > 59 or s > 59:
        return None
    fraction = int((g["f"] or "").ljust(9, "0"))
    zone = g["z"]
    offset_s = 0
    if zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        oh, om = int(digits[:2]), int(digits[2:])
        if oh > 23 or om > 59:
            return None
        offset_s = (oh * 3600 + om * 60) * (1 if zone[0] == "+" else -1)
    local = day * _DAY_NS + ((h * 60 + mi) * 60 + s) * 10**9 + fraction
    return local - offset_s * 10**9


@dataclass(frozen=True)
class Served:
    """One record as served: its exact JSON text, its id and its cursor (epoch ns or None)."""

    raw: str
    id: object
    cursor_ns: int | None

    @classmethod
    def of(cls, raw: str, cursor_field: str = "updated_at") -> Served:
        parsed = json.loads(raw)  # stdlib json reads NaN, lone surrogates, any integer
        if not isinstance(parsed, dict):
            return cls(raw, None, None)
        return cls(raw, parsed.get("id"), instant_ns(parsed.get(cursor_field)))


def _id_key(value: object) -> tuple[str, str]:
    return (type(value).__name__, str(value))


class RecordServer(LoopbackServer):
    """Serves ``put`` records on ``base_url``; a context manager that stops and joins it."""

    methods = ("GET",)

    def __init__(self, *, with_meta: bool = True,
                 on_request: Callable[[int, dict[str, str]], None] | None = None,
                 clock: Callable[[], float | None] = time.time) -> None:
        super().__init__(clock=clock)
        self.with_meta = with_meta
        self.on_request = on_request
        self._records: dict[str, list[Served]] = {}
        self.requests: dict[str, int] = {}  # per path
        self.queries: list[tuple[str, dict[str, str]]] = []  # every request, in order
        self.served: dict[int, list[object]] = {}  # request number -> ids of the page answered
        self.headers: list[list[tuple[str, str]]] = []  # every request's headers, in order

    def put(self, resource: str, records: Iterable[str | Served]) -> list[Served]:
        """Replace what ``resource`` serves with these records (raw JSON text each)."""
        served = [r if isinstance(r, Served) else Served.of(r) for r in records]
        with self.lock:
            self._records[resource] = served
        return served

    def drop(self, resource: str) -> None:
        """Serve ``resource`` no more: its path answers 404 (a read fails there, unretried)."""
        with self.lock:
            self._records.pop(resource, None)

    def records(self, resource: str) -> list[Served]:
        with self.lock:
            return list(self._records.get(resource, []))

    def _count(self, request: Request) -> int:
        with self.lock:
            self.headers.append(list(request.raw_headers))
            self.requests[request.path] = self.requests.get(request.path, 0) + 1
            self.queries.append((request.path, request.params))
            return len(self.queries)

    def _served(self, request: int, ids: list[object]) -> None:
        with self.lock:
            self.served[request] = ids

    def answer(self, request: Request) -> Reply:
        number_of_request = self._count(request)
        if self.on_request is not None:
            self.on_request(number_of_request, request.params)
        if request.headers.get("api_key") is None:
            return _error(401, "missing API key")
        match = re.fullmatch(r"/v1/([^/]+)", request.path)
        if match is None or match.group(1) not in self._records:
            return _error(404, f"unknown resource path {request.path}")
        resource = match.group(1)
        params = request.params
        try:
            number = int(params.get("page[number]", "1"))
            size = int(params.get("page[size]", "10"))
        except ValueError:
            return _error(400, "page[number] and page[size] must be integers")
        if number < 1 or not 1 <= size <= 100:
            return _error(400, "page[number] >= 1, page[size] in 1..100")
        sort = params.get("sort", "id")
        if sort not in ("id", "updated_at", "-updated_at"):
            return _error(400, f"unknown sort {sort!r}")
        records = self.records(resource)
        if "filter[updated_at][gte]" in params:
            low = instant_ns(params["filter[updated_at][gte]"])
            if low is None:
                return _error(400, "filter[updated_at][gte] is not an ISO-8601 timestamp")
            records = [r for r in records if r.cursor_ns is not None and r.cursor_ns >= low]
        # Python's sort is stable: records sharing id and cursor keep the order the test gave.
        def cursor(r: Served) -> int:
            return -(10**30) if r.cursor_ns is None else r.cursor_ns

        if sort == "id":
            records.sort(key=lambda r: _id_key(r.id))
        elif sort == "updated_at":
            records.sort(key=lambda r: (cursor(r), _id_key(r.id)))
        else:  # ties still by id ascending
            records.sort(key=lambda r: (-cursor(r), _id_key(r.id)))
        page = records[(number - 1) * size: number * size]
        self._served(number_of_request, [r.id for r in page])
        total_pages = (len(records) + size - 1) // size
        body = '{"data":[' + ",".join(r.raw for r in page) + "]"
        if self.with_meta:
            meta = {"page": {"number": number, "size": size, "total_pages": total_pages,
                             "total_count": len(records)}}
            nxt = (None if number >= total_pages
                   else f"/v1/{resource}?page[number]={number + 1}&page[size]={size}")
            body += ',"meta":' + json.dumps(meta) + ',"links":' + json.dumps({"next": nxt})
        return Reply(200, (body + "}").encode("utf-8"))


def _error(status: int, detail: str) -> Reply:
    return Reply(status, json.dumps({"errors": [{"status": str(status), "title": "error",
                                                 "detail": detail}]}).encode("utf-8"))
