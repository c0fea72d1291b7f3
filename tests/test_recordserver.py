"""The hostile record server serves what the tests wrote, byte for byte, and pages as the API does."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.recordserver import RecordServer, instant_ns

pytestmark = pytest.mark.slow

HEADERS = {"api_key": "k", "X-Organization-Id": "o"}


def get(server: RecordServer, resource: str, **params: str | int) -> httpx.Response:
    return httpx.get(f"{server.base_url}/v1/{resource}", params=params, headers=HEADERS)


def test_instants_are_compared_with_their_offsets() -> None:
    assert instant_ns("2026-03-01T11:00:00+01:00") == instant_ns("2026-03-01T10:00:00Z")
    assert instant_ns("2026-03-01T10:00:00.5Z") > instant_ns("2026-03-01T10:00:00Z")  # type: ignore[operator]
    assert instant_ns("2026-03-01T10:00:00.000000001Z") == instant_ns("2026-03-01T10:00:00Z") + 1  # type: ignore[operator]
    beyond = instant_ns("9999-12-31T23:00:00-05:00")
    assert beyond is not None and beyond > instant_ns("9999-12-31T23:59:59.999999Z")  # type: ignore[operator]
    assert instant_ns("2026-03-01T10:00:00") is None and instant_ns(5) is None
    assert instant_ns("2026-02-30T10:00:00Z") is None


def test_raw_text_is_served_unchanged_and_paged_by_instant_then_id() -> None:
    raws = ['{"id":"b","updated_at":"2026-03-01T11:00:00+01:00","x":NaN}',
            '{"id":"a","updated_at":"2026-03-01T10:00:00Z","s":"hi \\ud83d"}',
            '{"id":"c","updated_at":"2026-03-01T09:30:00-01:00","n":123456789012345678901234567890}',
            '{"id":"d","updated_at":"2026-03-01T10:00:00.5Z","f":0.1234567890123456789}']
    with RecordServer() as server:
        server.put("things", raws)
        first = get(server, "things", sort="updated_at", **{"page[size]": 2})
        assert first.status_code == 200
        assert first.text.startswith('{"data":[' + raws[1] + "," + raws[0] + "]")
        second = get(server, "things", sort="updated_at", **{"page[size]": 2, "page[number]": 2})
        assert second.text.startswith('{"data":[' + raws[3] + "," + raws[2] + "]")
        assert get(server, "things", **{"page[number]": 3, "page[size]": 2}).text.startswith(
            '{"data":[]')
        filtered = get(server, "things", sort="updated_at",
                       **{"filter[updated_at][gte]": "2026-03-01T10:00:00.000001Z"})
        assert filtered.text.startswith('{"data":[' + raws[3] + "," + raws[2] + "]")
        by_id = get(server, "things")
        assert by_id.text.startswith('{"data":[' + ",".join(sorted(raws, key=lambda r: r[7])) + "]")
        assert get(server, "things", sort="name").status_code == 400
        assert get(server, "things", **{"page[size]": 101}).status_code == 400
        assert get(server, "things", **{"filter[updated_at][gte]": "yesterday"}).status_code == 400
        assert get(server, "nothing").status_code == 404
        assert httpx.get(f"{server.base_url}/v1/things").status_code == 401
        server.put("things", raws[:1])
        assert get(server, "things").text.startswith('{"data":[' + raws[0] + "]")
    assert not [t for t in threading.enumerate() if t.name == "recordserver"]
