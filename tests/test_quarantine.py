"""The quarantine: a record that breaks its types is set aside exactly, shown, and replayed."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from analytics_client import Credentials, Lake, load_config, run_sync
from analytics_client.core import jsontext
from analytics_client.lake.quarantine import Quarantine
from analytics_client.lake.tables import TableWriter
from analytics_client.read.plan import plan_resource
from analytics_client.run.sync import replay_quarantine
from tests.support import SANDBOX_CLIENT

REPO = Path(__file__).resolve().parents[1]
# An own resource: amounts declared with 2 decimal places, a name that may not be null.
EVENTS: dict[str, Any] = {
    "client": {**SANDBOX_CLIENT, "base_url": "http://api.test"},
    "resources": [{
        "name": "events",
        "primary_key": "id",
        "columns": {"amount": {"data_type": "decimal", "precision": 12, "scale": 2},
                    "name": {"data_type": "text", "nullable": False}},
        "endpoint": {
            "path": "/v1/events",
            "params": {"sort": "updated_at"},
            "paginator": {"type": "page_number", "page_param": "page[number]",
                          "limit_param": "page[size]", "limit": 10, "base_page": 1,
                          "total_path": "meta.page.total_pages"},
            "incremental": {"cursor_path": "updated_at",
                            "start_param": "filter[updated_at][gte]"},
        },
    }],
}
BODY = (b'{"data": [{"id": "e1", "updated_at": "2026-03-01T10:00:00Z", "amount": 12.5, '
        b'"name": "ok"},'
        b' {"id": "e2", "updated_at": "2026-03-01T10:00:01Z", "amount": 12.345,'
        b' "name": "caf\\u00e9 \\ud83d"},'
        b' {"id": "e3", "updated_at": "2026-03-01T10:00:02Z", "amount": 1, "name": null}]}')


def serve(body: bytes) -> httpx.MockTransport:
    """The body on page 1 (and the first page of every filtered read), nothing after it."""
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page[number]", "1"))
        return httpx.Response(200, content=body if page == 1 else b'{"data": []}')
    return httpx.MockTransport(handler)


def run(lake: Path, config: dict[str, Any] = EVENTS) -> Any:
    [summary] = run_sync(load_config(config), Credentials("k", "o"), str(lake),
                         transport=serve(BODY))
    return summary


def relaxed() -> dict[str, Any]:
    """EVENTS with name allowed to be null: the same column type, so the table takes it."""
    config = json.loads(json.dumps(EVENTS))
    config["resources"][0]["columns"]["name"]["nullable"] = True
    return config


def test_a_run_sets_bad_records_aside_and_lands_the_rest(tmp_path: Path) -> None:
    """e2 (3 decimals, a lone surrogate) and e3 (null name) are set aside once, as sent."""
    summary = run(tmp_path)
    assert (summary.status, summary.inserted, summary.quarantined) == ("ok", 1, 2)
    assert Lake(str(tmp_path)).read("events")["id"].to_list() == ["e1"]
    rows = {r["key"]: r for r in Quarantine(Lake(str(tmp_path)), "analytics").read().to_dicts()}
    assert sorted(rows) == ["e2", "e3"]
    assert rows["e3"]["field"] == "name" and "not null" in rows["e3"]["reason"]
    assert rows["e2"]["field"] in ("amount", "name")
    sent = jsontext.loads(BODY)["data"]
    assert jsontext.loads(rows["e2"]["record"]) == sent[1]  # Decimal('12.345'), the surrogate
    assert jsontext.loads(rows["e2"]["record"])["amount"] == Decimal("12.345")
    again = run(tmp_path)
    assert again.quarantined == 2
    assert Quarantine(Lake(str(tmp_path)), "analytics").read().height == 2  # not twice


def test_replay_lands_what_the_current_config_accepts(tmp_path: Path) -> None:
    """With name nullable, replay lands e3 and removes it; e2 still does not fit and stays."""
    run(tmp_path)
    lake = Lake(str(tmp_path))
    replayed = replay_quarantine(lake, load_config(relaxed()).resources[0], "analytics")
    assert (replayed.landed, replayed.stale) == (1, 0)
    assert (replayed.result.inserted, replayed.result.quarantined) == (1, 1)
    assert sorted(lake.read("events")["id"]) == ["e1", "e3"]
    assert Quarantine(lake, "analytics").read()["key"].to_list() == ["e2"]


@pytest.mark.slow  # three processes of the command line: ~18 s on a busy 2-core machine
def test_quarantine_show_and_replay_from_the_command_line(tmp_path: Path) -> None:
    """`quarantine show` lists key, field and reason; `replay` says what landed and what it
    skipped as stale (e3's row was rewritten, newer, by a writer that dropped nothing)."""
    lake = tmp_path / "lake"
    run(lake)
    newer = {"id": "e3", "updated_at": "2026-03-01T10:00:09Z", "amount": 1, "name": "later"}
    spec = plan_resource(load_config(relaxed()).resources[0]).table
    TableWriter(Lake(str(lake)), "events", cursor_field=spec.cursor_field,
                columns=spec.columns).write([newer])
    config = tmp_path / "events.yaml"
    config.write_text(yaml.safe_dump(relaxed()))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "flows/main.py", "quarantine", *args,
                               "--lake", str(lake), "--config", str(config)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)

    shown = cli("show")
    assert shown.returncode == 0, shown.stderr
    assert "2 quarantined record(s)" in shown.stdout
    assert "'e3'" in shown.stdout and "not null" in shown.stdout
    replayed = cli("replay", "events")
    assert replayed.returncode == 0, replayed.stderr
    assert ("events: 0 replayed record(s) landed (0 inserted, 0 updated); 1 skipped as stale "
            "(the table holds a newer version of their key) and dropped; 1 still set aside"
            in replayed.stdout), replayed.stdout
    assert Lake(str(lake)).read("events").filter(id="e3")["name"].to_list() == ["later"]
    after = cli("show").stdout
    assert "1 quarantined record(s)" in after and "'e2'" in after and "'e3'" not in after
