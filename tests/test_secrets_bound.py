"""Issue 23, item 2: a secret stored for one API is never sent to another.

Real parts: Prefect Secret blocks in a real Prefect API (the module's ``harness``), the command
line in-process (``check`` sends the run's own first request; a run starts the real flow), and
hostile loopback servers (tests/recordserver.py) that keep every header they saw.

The expected outcome comes from ``RULES``, a table written from the rules in
analytics_client/orchestration/secrets.py's docstring, not from the code that applies them.
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import logging
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prefect.blocks.system import Secret

from analytics_client.http.origin import origin_text
from analytics_client.orchestration.secrets import read_stored
from flows.main import main
from tests.records_support import T0, own_config
from tests.support import ORG_HEADERS
from tests.recordserver import RecordServer

# ---- the rules, as a table --------------------------------------------------------------------

# (is the environment variable set?, what the Secret block holds) -> what the run does with
# that secret, for a run whose API is B:
#   "block"   sends the block's value       "environment"  sends the variable's value
#   "refused" exit 2 before any request     "missing"      exit 2 before any request
# "no host": JSON whose host is not an http(s) origin (typed into the UI without a scheme).
BLOCKS = ("absent", "unbound", "for A", "for B", "no host")
RULES = {
    (False, "absent"): "missing",
    (True, "absent"): "environment",
    (False, "unbound"): "block",       # stored before binding: used, with a warning
    (True, "unbound"): "environment",
    (False, "for A"): "refused",       # never sent to B
    (True, "for A"): "environment",
    (False, "for B"): "block",
    (True, "for B"): "block",          # stored for this API: it wins, the variable is named
    (False, "no host"): "refused",     # cannot be checked: sent nowhere
    (True, "no host"): "environment",
}


def spellings(secret: str) -> set[str]:
    """The forms a secret could leak in: as is, percent-encoded, JSON-escaped, base64."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
            json.dumps(secret)[1:-1], base64.b64encode(secret.encode()).decode()}


# ---- the origin a secret is bound to (no Prefect) ---------------------------------------------

_HOST = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,6}){1,2}", fullmatch=True)


@settings(max_examples=60)
@given(host=_HOST, scheme=st.sampled_from(["http", "https"]),
       path=st.from_regex(r"(/[a-z0-9._~-]{0,8}){0,3}", fullmatch=True),
       query=st.from_regex(r"(\?[a-z]=[a-z0-9]{0,4})?", fullmatch=True))
def test_spellings_of_one_origin_are_one_origin(host: str, scheme: str, path: str,
                                                query: str) -> None:
    """Case, the default port, a path, a query and user info do not change where a key goes."""
    default = {"http": 80, "https": 443}[scheme]
    plain = f"{scheme}://{host}"
    for spelling in (f"{scheme.upper()}://{host.upper()}{path}{query}",
                     f"{scheme}://{host}:{default}{path}", f"{scheme}://user:pw@{host}/"):
        assert origin_text(spelling) == origin_text(plain) == f"{scheme}://{host}:{default}"


@settings(max_examples=60)
@given(host=_HOST, other=_HOST, port=st.integers(1, 65535))
def test_another_scheme_host_or_port_is_another_origin(host: str, other: str, port: int) -> None:
    """http and https, two ports, two hosts: never the same origin."""
    here = origin_text(f"http://{host}:{port}")
    assert origin_text(f"https://{host}:{port}") != here
    assert origin_text(f"http://{host}:{port % 65535 + 1}") != here
    if other != host:
        assert origin_text(f"http://{other}:{port}") != here


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["host", "value", "x"]), inner,
                                       max_size=3), max_leaves=6)


@settings(max_examples=200)
@given(raw=_JSON | _JSON.map(json.dumps))
def test_any_stored_value_reads_as_one_of_four_kinds(raw: object) -> None:
    """Whatever a block holds (a UI accepts any JSON): bound only to a host that is an http(s)
    origin, with a non-empty text value; never an exception."""
    stored = read_stored(raw)
    assert stored.kind in ("absent", "unbound", "bound", "invalid")
    if stored.kind == "bound":
        parsed = raw if isinstance(raw, dict) else json.loads(str(raw))
        assert isinstance(parsed, dict) and stored.value == str(parsed["value"]).strip()
        assert stored.host.startswith(("http://", "https://"))
    if isinstance(raw, str) and not raw.strip().startswith("{") and raw.strip():
        assert (stored.kind, stored.value) == ("unbound", raw.strip())  # as typed, not as JSON


def test_a_bound_value_names_its_origin_however_the_host_was_typed() -> None:
    """The UI's JSON editor or ``secrets``: the host's spelling does not matter."""
    for host in ("https://API.example.com", "https://api.example.com:443/v1/",
                 '  https://api.example.com  '):
        stored = read_stored({"host": host, "value": " k-123456789 "})
        assert (stored.kind, stored.host, stored.value) == (
            "bound", "https://api.example.com:443", "k-123456789")
    for host in ("api.example.com", "ftp://api.example.com", "https://", "", "https://a:99999"):
        assert read_stored({"host": host, "value": "k-123456789"}).kind == "invalid", host


# ---- every combination of sources, against a hostile server ------------------------------------

_names = itertools.count()
# A secret that could be a word of a message ("ANALYTICS_AP" is in "ANALYTICS_API_KEY") would
# be "seen" in any output: each carries a mark that no message holds.
_SECRET = st.text(alphabet=string.ascii_letters + string.digits + "-_.~+/=%&?#!@",
                  min_size=12, max_size=24).map(lambda text: f"q7z{text}")
# Eight values: key and organization id, each from the environment, a block for A, a block for
# B and an unbound block. None contains another, so "never seen" means what it says.
_VALUES = st.lists(_SECRET, min_size=8, max_size=8, unique=True).filter(
    lambda vs: all(a not in b for a in vs for b in vs if a != b))


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[RecordServer, RecordServer]]:
    """B, the run's API, and A, the API the blocks may have been stored for; both hostile."""
    with RecordServer() as b, RecordServer() as a:
        for server in (a, b):
            server.put("events", [f'{{"id":"e1","updated_at":"{T0}"}}'])
        yield a, b


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An own config that sends the organization id too (declared, as the seed does), so both
    credentials of a stored pair are tested for where they go."""
    config = own_config("events")
    config["client"]["headers"] = {**config["client"].get("headers", {}), **ORG_HEADERS}
    path = tmp_path_factory.mktemp("config") / "events.json"
    path.write_text(json.dumps(config))
    return path


class _Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@contextlib.contextmanager
def _said_by_secrets() -> Iterator[_Said]:
    said = _Said()
    logger = logging.getLogger("analytics_client.orchestration.secrets")
    logger.addHandler(said)
    try:
        yield said
    finally:
        logger.removeHandler(said)


def _save(name: str, value: Any) -> None:
    Secret(value=value).save(name, overwrite=True)


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(key_env=st.booleans(), key_block=st.sampled_from(BLOCKS), org_env=st.booleans(),
       org_block=st.sampled_from(BLOCKS), a_is=st.sampled_from(["another port", "https",
                                                                  "localhost"]),
       values=_VALUES)
def test_a_secret_stored_for_a_never_reaches_b_whatever_the_environment_holds(
        harness: None, hosts: tuple[RecordServer, RecordServer], config_file: Path,
        tmp_path: Path, key_env: bool, key_block: str, org_env: bool, org_block: str,
        a_is: str, values: list[str]) -> None:
    """`check --base-url B` (the run's own first request) with every mix of sources: what B
    receives, or the exit 2 before any request, is the table's; A's values never reach B."""
    a_server, b = hosts
    port = b.base_url.rsplit(":", 1)[1]
    a_url = {"another port": a_server.base_url, "https": f"https://127.0.0.1:{port}",
             "localhost": f"http://localhost:{port}"}[a_is]
    kinds = ("environment", "for A", "for B", "unbound")
    key = dict(zip(kinds, values[:4], strict=True)) | {"no host": values[1]}
    org = dict(zip(kinds, values[4:], strict=True)) | {"no host": values[5]}
    n = next(_names)
    blocks = {"key": f"i23-key-{n}", "org": f"i23-org-{n}"}
    for which, block, vals in (("key", key_block, key), ("org", org_block, org)):
        if block == "unbound":
            _save(blocks[which], vals["unbound"])  # as every version before binding saved it
        elif block != "absent":
            host = {"for A": a_url, "for B": b.base_url, "no host": a_url.split("://")[1]}[block]
            _save(blocks[which], {"host": host, "value": vals[block]})  # the documented form
    before = len(b.headers)
    with pytest.MonkeyPatch.context() as env, _said_by_secrets() as said:
        if key_env:
            env.setenv("ANALYTICS_API_KEY", key["environment"])
        if org_env:
            env.setenv("ANALYTICS_ORGANIZATION_ID", org["environment"])
        code, out, err = _main(["check", "--base-url", b.base_url, "--config", str(config_file),
                                "--api-key-block", blocks["key"],
                                "--organization-block", blocks["org"],
                                "--lake", str(tmp_path / f"lake-{n}")])
    seen = b.headers[before:]
    outcome = {"key": RULES[(key_env, key_block)], "org": RULES[(org_env, org_block)]}
    event(f"key {outcome['key']}, organization id {outcome['org']}")

    # Whatever the outcome: nothing stored for A reached B, no value was said anywhere.
    sent = "\n".join(f"{k}: {v}" for request in seen for k, v in request)
    assert key["for A"] not in sent and org["for A"] not in sent
    everything = out + err + "\n".join(said.lines)
    for value in values:
        for form in spellings(value):
            assert form not in everything, (form, everything)
    assert a_server.headers == []

    if "refused" in outcome.values():
        assert code == 2, everything
        [line] = err.strip().splitlines()
        assert origin_text(b.base_url) in line, line
        refused = [block for which, block in (("key", key_block), ("org", org_block))
                   if outcome[which] == "refused"]
        # A is named when a refused block was stored for A (a block the run did not use, the
        # environment standing in for it, is not the line's business)
        assert (origin_text(a_url) in line) == ("for A" in refused), line
        assert f"secrets --base-url {origin_text(b.base_url)}" in line, line
        for which, env_var in (("key", "ANALYTICS_API_KEY"), ("org", "ANALYTICS_ORGANIZATION_ID")):
            refused = outcome[which] == "refused"
            assert (f"{blocks[which]!r} (" in line, env_var in line) == (refused, refused), line
        assert seen == []
        return
    if "missing" in outcome.values():
        assert code == 2, everything
        [line] = err.strip().splitlines()
        assert "no API key found" in line if outcome["key"] == "missing" else \
            "no organization id found" in line, line
        assert seen == []
        return
    assert code == 0, everything
    expected_key = key["environment"] if outcome["key"] == "environment" else key[key_block]
    expected_org = org["environment"] if outcome["org"] == "environment" else org[org_block]
    assert seen and all(dict(request)["api_key"] == expected_key and
                        dict(request)["X-Organization-Id"] == expected_org for request in seen)
    [sources] = [line for line in out.splitlines() if line.startswith("secrets: ")]
    for which, what, env_var in (("key", "API key", "ANALYTICS_API_KEY"),
                                 ("org", "organization id", "ANALYTICS_ORGANIZATION_ID")):
        source = env_var if outcome[which] == "environment" else \
            f"Prefect Secret block {blocks[which]!r}"
        assert f"{what} from {source}" in sources, sources
    unbound_used = [w for w, b_ in (("key", key_block), ("org", org_block))
                    if b_ == "unbound" and outcome[w] == "block"]
    warnings = [line for line in said.lines if line.startswith("WARNING")]
    assert len(warnings) == len(unbound_used), said.lines
    assert all(f"secrets --base-url {origin_text(b.base_url)}" in w for w in warnings)


# ---- the run itself: the case ----------------------------------------------------------

STORED_KEY, STORED_ORG = "stored-for-a-key-7f3e", "stored-for-a-org-9c1d"
ENV_KEY, ENV_ORG = "environment-key-b41a", "environment-org-d02e"


def _run(b: RecordServer, config_file: Path, tmp_path: Path, pipeline: str,
         *blocks: str) -> int:
    return main(["--base-url", b.base_url, "--config", str(config_file), "--lake",
                 str(tmp_path / "lake"), "--pipeline", pipeline, *blocks])


def _sent(requests: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    return [(dict(r)["api_key"], dict(r)["X-Organization-Id"]) for r in requests]


@pytest.mark.slow
def test_after_secrets_for_a_a_run_against_b_sends_the_environment_and_says_so(
        harness: None, hosts: tuple[RecordServer, RecordServer], config_file: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """The issue's case: `secrets` stored the blocks for A; a run with another base URL and
    ANALYTICS_API_KEY in its environment sent the stored key to B. Now B gets the environment's
    values, and the run's INFO line names where each came from and the block it left out."""
    a, b = hosts
    monkeypatch.setenv("ANALYTICS_API_KEY", STORED_KEY)
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", STORED_ORG)
    code, out, _ = _main(["secrets", "--base-url", a.base_url])
    assert code == 0 and f"for the API at {origin_text(a.base_url)}" in out, out
    monkeypatch.setenv("ANALYTICS_API_KEY", ENV_KEY)
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", ENV_ORG)
    before = len(b.headers)
    code = _run(b, config_file, tmp_path, "i23-environment")
    said = capfd.readouterr()
    assert code == 0, said.err[-3000:]
    assert set(_sent(b.headers[before:])) == {(ENV_KEY, ENV_ORG)}
    assert a.headers == []
    [line] = [r.getMessage() for r in caplog.records if "secrets for " in r.getMessage()]
    assert (f"secrets for {origin_text(b.base_url)}: API key from ANALYTICS_API_KEY (Prefect "
            f"Secret block 'analytics-api-key' is for {origin_text(a.base_url)}, not used); "
            "organization id from ANALYTICS_ORGANIZATION_ID (Prefect Secret block "
            f"'analytics-organization-id' is for {origin_text(a.base_url)}, not used)") in line
    for value in (STORED_KEY, STORED_ORG, ENV_KEY, ENV_ORG):
        assert all(form not in said.out + said.err + caplog.text for form in spellings(value))


@pytest.mark.slow
def test_without_the_environment_a_run_against_b_is_one_line_and_exit_2_before_any_request(
        harness: None, hosts: tuple[RecordServer, RecordServer], config_file: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Blocks stored for A, nothing in the environment: exit 2, one line naming both APIs and
    the two ways out; B sees no request."""
    a, b = hosts
    monkeypatch.setenv("ANALYTICS_API_KEY", STORED_KEY)
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", STORED_ORG)
    blocks = ["--api-key-block", "i23-run-key", "--organization-block", "i23-run-org"]
    assert _main(["secrets", "--base-url", a.base_url, *blocks])[0] == 0
    monkeypatch.delenv("ANALYTICS_API_KEY")
    monkeypatch.delenv("ANALYTICS_ORGANIZATION_ID")
    before = len(b.headers)
    code = _run(b, config_file, tmp_path, "i23-refused", *blocks)
    said = capfd.readouterr()
    assert code == 2, said.err[-3000:]
    [line] = [line for line in said.err.splitlines() if line.strip()]
    assert line == (
        "error: the Prefect Secret blocks 'i23-run-key' (API key, stored for "
        f"{origin_text(a.base_url)}) and 'i23-run-org' (organization id, stored for "
        f"{origin_text(a.base_url)}) are not for this run's API {origin_text(b.base_url)}, so "
        f"nothing was sent: run `python flows/main.py secrets --base-url {origin_text(b.base_url)}"
        " --api-key-block i23-run-key --organization-block i23-run-org` to store them for this "
        "API, or set ANALYTICS_API_KEY and ANALYTICS_ORGANIZATION_ID")
    assert b.headers[before:] == [] and a.headers == []


@pytest.mark.slow
def test_an_unbound_block_is_used_as_stored_with_a_warning_naming_secrets(
        harness: None, hosts: tuple[RecordServer, RecordServer], config_file: Path,
        tmp_path: Path, capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """A block saved before secrets were bound (plain text) still works when the environment
    has nothing: its exact text is sent (Prefect's ``Secret.get()`` turned ``12345.50`` into
    ``12345.5``), and the run warns, naming the `secrets` command that binds it."""
    _, b = hosts
    key = "12345.50"
    _save("i23-unbound-key", key)
    _save("i23-unbound-org", "12345.50e1")  # JSON would make it 123455.0
    before = len(b.headers)
    code = _run(b, config_file, tmp_path, "i23-unbound", "--api-key-block", "i23-unbound-key",
                "--organization-block", "i23-unbound-org")
    said = capfd.readouterr()
    assert code == 0, said.err[-3000:]
    assert set(_sent(b.headers[before:])) == {(key, "12345.50e1")}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, caplog.text[-3000:]
    assert all("was stored without the API it is for" in w for w in warnings)
    assert all(f"python flows/main.py secrets --base-url {origin_text(b.base_url)} "
               "--api-key-block i23-unbound-key --organization-block i23-unbound-org" in w
               for w in warnings)


@pytest.mark.slow
def test_secrets_binds_the_oauth2_client_of_an_oauth2_config_too(
        harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`secrets --config` with an OAuth2 config that sends the organization header stores the
    organization id, client id and secret (and no API key) for the API; a run against another
    refuses all three, naming the command with its --config."""
    from analytics_client.core.errors import SecretHostMismatchError
    from analytics_client.orchestration.api import command_api
    from analytics_client.orchestration.secrets import resolve_credentials

    a, b = "https://api.example.com", "https://eu.api.example.com"
    config = tmp_path / "oauth.json"
    config.write_text(json.dumps({
        "client": {"base_url": a, "headers": ORG_HEADERS, "auth": {
            "type": "oauth2_client_credentials", "access_token_url": a + "/oauth/token",
            "client_id": 'dlt.secrets["client_id"]',
            "client_secret": 'dlt.secrets["client_secret"]'}},
        "resources": [{"name": "tags", "endpoint": {"path": "/v1/tags"}}]}))
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", "org-for-a-6f1e")
    monkeypatch.setenv("ANALYTICS_CLIENT_ID", "client-for-a-0c3d")
    monkeypatch.setenv("ANALYTICS_CLIENT_SECRET", "client-secret-for-a-95ab")
    blocks = ["--organization-block", "i23-oauth-org"]
    code, out, err = _main(["secrets", "--config", str(config), *blocks])
    assert code == 0, err
    assert out.startswith("saved Prefect Secret blocks 'i23-oauth-org', 'analytics-client-id', "
                          "'analytics-client-secret' for the API at https://api.example.com:443")
    for name in ("ANALYTICS_ORGANIZATION_ID", "ANALYTICS_CLIENT_ID", "ANALYTICS_CLIENT_SECRET"):
        monkeypatch.delenv(name)
    needs = ("organization_id", "client_id", "client_secret")
    with command_api() as api:
        found = resolve_credentials("analytics-api-key", "i23-oauth-org", base_url=a + "/v2",
                                    api=api, needs=needs, log=None)
        assert (found.organization_id, found.client_id, found.client_secret) == (
            "org-for-a-6f1e", "client-for-a-0c3d", "client-secret-for-a-95ab")
        with pytest.raises(SecretHostMismatchError) as refused:
            resolve_credentials("analytics-api-key", "i23-oauth-org", base_url=b, api=api,
                                needs=needs, log=None)
    message = str(refused.value)
    assert all(name in message for name in ("'i23-oauth-org'", "'analytics-client-id'",
                                            "'analytics-client-secret'"))
    assert ("`python flows/main.py secrets --base-url https://eu.api.example.com:443 "
            "--organization-block i23-oauth-org --config <the run's config>`") in message
