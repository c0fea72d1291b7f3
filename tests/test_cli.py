"""The command line as a user meets it first: one line and exit 2 for what can be known up front.

Real parts: `python flows/main.py` in a subprocess where the process boundary matters (a terminal,
Prefect's temporary server), the loopback sandbox, real Delta tables, a real Prefect API.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import io
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, Lake
from analytics_client.orchestration.cli import build_parser as _parser
from analytics_sandbox import RunningSandbox, World, serve
from flows.main import analytics_sync, main

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"tags": 15, "users": 25, "deals": 60, "pages": 30, "tasks": 45}
RESOURCES = "tags, deals, pages, tasks, users"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with serve(World(seed=3, counts=SMALL)) as running:
        yield running


@pytest.fixture
def sandbox_env(sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> RunningSandbox:
    monkeypatch.setenv("ANALYTICS_API_KEY", sandbox.api_key)
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
    return sandbox


def _cli(*args: str, tmp_path: Path, extra_env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python flows/main.py ARGS` as a user runs it: own PREFECT_HOME, no API URL, no terminal."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "ANALYTICS_API_KEY", "ANALYTICS_ORGANIZATION_ID")}
    env.update({"PREFECT_HOME": str(tmp_path / "prefect"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                **(extra_env or {})})
    return subprocess.run([sys.executable, "flows/main.py", *args], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _error_lines(stderr: str) -> list[str]:
    """What the program said on stderr, without Prefect's own INFO lines about its server."""
    return [line for line in stderr.splitlines()
            if line.strip() and " | INFO " not in line and not line.startswith("See https://")]


def _blocked_lake(tmp_path: Path) -> Path:
    """A lake path no one can create, not even root: its parent is a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return blocker / "lake"


# --- defect 1: the first run on a busy machine ----------------------------------------------


@pytest.mark.slow  # a Prefect server or a fresh interpreter: the slow tier
def test_the_temporary_prefect_server_gets_time_to_start_on_a_busy_machine() -> None:
    """flows/main.py raises Prefect's 20 s startup wait (a first start on 2 busy cores: longer)."""
    setting = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    env = {k: v for k, v in os.environ.items() if k != setting}
    script = ("import flows.main; from prefect.settings import "
              "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as s; print(s.value())")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) >= 120


@pytest.mark.slow  # a Prefect server or a fresh interpreter: the slow tier
@pytest.mark.parametrize("command", [["--sandbox", "--sandbox-scale", "0.01"],
                                     ["--base-url", "http://127.0.0.1:9"]])
def test_a_temporary_server_that_does_not_start_is_one_line_and_exit_2(
        tmp_path: Path, command: list[str]) -> None:
    """No traceback, and not "no API key found" when the Secret blocks could not be asked: one
    line saying Prefect did not start and how to use a long-lived server."""
    done = _cli(*command, "--lake", str(tmp_path / "lake"), tmp_path=tmp_path,
                extra_env={"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0"})
    assert done.returncode == 2, done.stderr[-3000:]
    [line] = _error_lines(done.stderr)
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in line
    assert "prefect server start" in line and "PREFECT_API_URL" in line


# --- defect 4: state honours --sandbox -------------------------------------------------------


@pytest.mark.slow  # a Prefect server or a fresh interpreter: the slow tier
def test_state_show_with_sandbox_reads_the_lake_the_sandbox_run_writes(
        harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`state show --sandbox` looks at ./data/sandbox-lake, where `--sandbox` runs write."""
    monkeypatch.chdir(tmp_path)
    pl.DataFrame({"id": ["d1"]}).write_delta(str(tmp_path / "data" / "sandbox-lake" / "deals"))
    assert main(["state", "show", "--sandbox"]) == 0
    out = capsys.readouterr().out
    assert f"pipeline 'sandbox', lake {tmp_path / 'data' / 'sandbox-lake'}" in out
    assert "deals: block cursor -, table cursor - (version 0)" in out


# --- defect 5: exit codes and tracebacks ----------------------------------------------------


def test_a_run_without_a_secret_is_one_line_and_exit_2_before_any_request(
        harness: None, sandbox: RunningSandbox, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """No key in a Prefect block nor the environment: the README's exit 2, and no flow run."""
    code = main(["--base-url", sandbox.base_url, "--lake", str(tmp_path / "lake"),
                 "--pipeline", "no-secret"])
    err = capsys.readouterr().err
    assert code == 2, err
    [line] = err.strip().splitlines()
    assert "no API key found" in line and "ANALYTICS_API_KEY" in line
    assert sandbox.stats()["total_requests"] == 0


@pytest.mark.parametrize("names", [["deal"], ["deals", "userz"]])
def test_state_reset_of_an_unknown_resource_lists_the_configured_ones(
        names: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A typo in `state reset` is one line naming it and every configured resource."""
    assert main(["state", "reset", *names]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"no resource named {names[-1]!r}" in line and RESOURCES in line


_NAME = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(
    lambda n: n not in RESOURCES.split(", "))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_NAME, min_size=1, max_size=3, unique=True))
def test_an_unknown_resource_in_resources_is_one_line_naming_it(names: list[str]) -> None:
    """`--resources deal` (any name not configured): one line, exit 2, nothing started."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--resources", ",".join(["deals", *names]), "--base-url", "http://127.0.0.1:9",
                     "--api-key-block", "", "--organization-block", ""])
    said = err.getvalue()
    assert code == 2
    assert all(f"no resource named {n!r}" in said for n in names)
    if len(names) == 1:
        [line] = said.strip().splitlines()
        assert all(r in line for r in RESOURCES.split(", "))


@pytest.mark.slow  # a Prefect server or a fresh interpreter: the slow tier
def test_secrets_without_a_terminal_says_which_variable_to_set(tmp_path: Path) -> None:
    """No terminal to prompt on and no variables: one line, exit 2, no EOFError."""
    done = _cli("secrets", tmp_path=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    [line] = _error_lines(done.stderr)
    assert "ANALYTICS_API_KEY" in line and "no terminal" in line


def _parse(argv: list[str]) -> tuple[int | None, str]:
    """Run the parser as main does; the exit code (None: accepted) and what it said."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            _parser().parse_args(argv)
        except SystemExit as exc:
            return int(exc.code or 0), err.getvalue()
    return None, err.getvalue()


_NOT_A_COUNT = st.one_of(
    st.integers(max_value=0).map(str),
    st.from_regex(r"[0-9]*[.a-z][0-9a-z.]*", fullmatch=True),
    st.just(""),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_NOT_A_COUNT)
def test_batch_rows_below_one_or_not_a_number_is_refused_in_one_line(value: str) -> None:
    """--batch-rows 0 committed empty batches (16x slower); any value but a count is refused."""
    code, said = _parse(["--batch-rows", value])
    assert code == 2
    [line] = said.strip().splitlines()
    assert "--batch-rows" in line


@settings(max_examples=30, deadline=None)
@given(value=st.integers(min_value=1, max_value=10**9))
def test_batch_rows_accepts_every_count(value: int) -> None:
    assert _parser().parse_args(["--batch-rows", str(value)]).batch_rows == value


@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.floats(max_value=0), st.just("nan"), st.just("inf"), st.just("x")))
def test_sandbox_scale_must_be_a_positive_number(value: object) -> None:
    code, said = _parse(["--sandbox", "--sandbox-scale", str(value)])
    assert code == 2 and "--sandbox-scale" in said


# --- defect 6: check asks what the run asks -------------------------------------------------


def _check(sandbox: RunningSandbox, tmp_path: Path, *extra: str) -> int:
    return main(["check", "--base-url", sandbox.base_url, "--api-key-block", "",
                 "--organization-block", "", "--lake", str(tmp_path / "lake"), *extra])


def _config_file(tmp_path: Path, **paginator: object) -> Path:
    config = copy.deepcopy(DEFAULT_CONFIG)
    for resource in config["resources"]:
        resource["endpoint"]["paginator"] = {**resource["endpoint"]["paginator"], **paginator}
    path = tmp_path / "source.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_check_asks_for_the_page_size_the_run_will_ask_for(
        sandbox_env: RunningSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A page size the API refuses (page[size] 500; at most 100) fails check, as in the run."""
    config = _config_file(tmp_path, limit=500)
    assert _check(sandbox_env, tmp_path, "--config", str(config)) == 1
    out = capsys.readouterr().out
    assert len(re.findall(r"FAIL \w+: HTTP 400 on page 1 .*page\[size\]", out)) == 5


def test_check_passes_the_real_page_size_the_api_accepts(
        sandbox_env: RunningSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config_file(tmp_path, limit=100)
    assert _check(sandbox_env, tmp_path, "--config", str(config)) == 0
    assert capsys.readouterr().out.count(" ok ") == 5
    assert sandbox_env.stats()["total_requests"] == 5


def test_check_fails_for_a_lake_that_cannot_be_written(
        sandbox_env: RunningSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The run would fetch everything and then fail to write: check says so first."""
    code = main(["check", "--base-url", sandbox_env.base_url, "--api-key-block", "",
                 "--organization-block", "", "--lake", str(_blocked_lake(tmp_path))])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"lake: FAIL the lake \S+ cannot be written \(\S+ is not a directory\)", out)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("base_url", [f"http://127.0.0.1:{_closed_port()}",
                                      "http://analytics-sync-check.invalid"])
def test_check_fails_at_once_on_a_host_it_cannot_reach_and_never_speaks_of_commits(
        base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Connection refused or no DNS: one attempt, the other resources not asked, no 'committed'."""
    monkeypatch.setenv("ANALYTICS_API_KEY", "k")
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", "o")
    attempts: list[object] = []
    import stamina.instrumentation

    before = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([attempts.append])
    try:
        code = main(["check", "--base-url", base_url, "--api-key-block", "",
                     "--organization-block", "", "--lake", str(tmp_path / "lake")])
    finally:
        # As the library left them (our client turns stamina's own logging hooks off).
        stamina.instrumentation.set_on_retry_hooks(before)
    out = capsys.readouterr().out
    assert code == 1
    assert attempts == []
    assert out.count("cannot connect to") == 1 and out.count("not asked:") == 4
    assert "commit" not in out


# --- defect 7: an unwritable lake is found before the first request -------------------------


def test_a_run_into_an_unwritable_lake_stops_before_the_first_request(
        harness: None, sandbox_env: RunningSandbox, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The command line: one line naming the lake, exit 2, the API never asked."""
    code = main(["--base-url", sandbox_env.base_url, "--lake", str(_blocked_lake(tmp_path)),
                 "--api-key-block", "", "--organization-block", "", "--pipeline", "ro"])
    err = capsys.readouterr().err
    assert code == 2, err
    [line] = err.strip().splitlines()
    assert "cannot be written" in line and "--lake" in line
    assert sandbox_env.stats()["total_requests"] == 0


def _table_made_elsewhere(lake: Path, resource: str, features: list[str]) -> None:
    """A table whose protocol another engine upgraded (Spark, Databricks): a commit that
    requires ``features``, as their writers leave it (Delta PROTOCOL.md, "Table Features")."""
    from deltalake import write_deltalake

    uri = lake / resource
    write_deltalake(str(uri), pl.DataFrame({"id": ["a"], "updated_at": [dt.datetime(
        2026, 1, 1, tzinfo=dt.UTC)]}))
    protocol = {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                             "readerFeatures": [f for f in features if f == "deletionVectors"],
                             "writerFeatures": features}}
    (uri / "_delta_log" / f"{1:020d}.json").write_text(json.dumps(protocol) + "\n")


@pytest.mark.parametrize("features", [["rowTracking", "domainMetadata"],
                                      ["clustering", "domainMetadata"], ["deletionVectors"],
                                      ["identityColumns"], ["icebergCompatV1"]])
def test_a_table_with_a_feature_delta_rs_cannot_write_is_refused_before_any_request(
        harness: None, sandbox_env: RunningSandbox, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], features: list[str]) -> None:
    """Issue 24: delta-rs refuses such a table at its first commit, after every page was
    fetched; the run names the resource and the feature before its first request, exit 2."""
    lake = tmp_path / "lake"
    _table_made_elsewhere(lake, "deals", features)
    code = main(["--base-url", sandbox_env.base_url, "--lake", str(lake),
                 "--api-key-block", "", "--organization-block", "", "--pipeline", "rt"])
    err = capsys.readouterr().err
    assert code == 2, err
    [line] = err.strip().splitlines()
    assert "deals:" in line and features[0] in line and "DROP FEATURE" in line, line
    assert sandbox_env.stats()["total_requests"] == 0


def test_the_library_refuses_such_a_table_before_any_request_too(
        sandbox_env: RunningSandbox, tmp_path: Path) -> None:
    """``run_sync`` (the library without Prefect) preflights as the command line does."""
    from analytics_client import Credentials, load_config, run_sync
    from analytics_client.core.errors import UnsupportedTableFeature

    _table_made_elsewhere(tmp_path / "lake", "deals", ["rowTracking", "domainMetadata"])
    config = load_config(None, base_url=sandbox_env.base_url)
    with pytest.raises(UnsupportedTableFeature) as caught:
        run_sync(config, Credentials(sandbox_env.api_key, sandbox_env.organization_id),
                 str(tmp_path / "lake"))
    assert caught.value.resource == "deals" and "rowTracking" in str(caught.value)
    assert sandbox_env.stats()["total_requests"] == 0


def test_a_deployed_flow_into_an_unwritable_lake_fails_before_the_first_request(
        harness: None, sandbox_env: RunningSandbox, tmp_path: Path) -> None:
    """The flow (what a deployment runs) checks the lake too, before its client sends anything."""
    state = analytics_sync(pipeline="ro-flow", lake_uri=str(_blocked_lake(tmp_path)),
                           base_url=sandbox_env.base_url, api_key_block=None,
                           organization_id_block=None, return_state=True)
    assert state.is_failed() and "cannot be written" in (state.message or "")
    assert sandbox_env.stats()["total_requests"] == 0


# --- defect 11: the README runs ---------------------------------------------------------------

README = (ROOT / "README.md").read_text()


def test_the_readme_example_config_runs_against_the_api(
        sandbox_env: RunningSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The YAML under "Configuration" passes check against the sandbox (the API's /v1/ paths)."""
    section = README.split("## Configuration", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    path = tmp_path / "readme.yaml"
    path.write_text(example.group(1))
    assert _check(sandbox_env, tmp_path, "--config", str(path)) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "deals        ok" in out and "tags         ok" in out


def _commands() -> dict[str, argparse.ArgumentParser]:
    [commands] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_the_readme_lists_every_command_and_option() -> None:
    options = {s for p in _commands().values() for a in p._actions for s in a.option_strings
               if s.startswith("--")}
    assert "--full-refresh" in options and "--sandbox" in options  # a walk that finds them
    missing = sorted(o for o in options - {"--help"} if f"`{o}" not in README)
    assert missing == []
    assert all(f"`{c}`" in README for c in ("run", "check", "secrets", "state show"))


def test_the_docs_cite_only_files_in_the_repository() -> None:
    """No path of the machine the docs were written on, no notes a clone does not have."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        assert "/work/" not in text, doc.name
        assert "field notes" not in text.lower(), doc.name
        for target in re.findall(r"\]\(([^)#]+?\.md)\)", text):
            if "://" not in target:
                assert (doc.parent / target).exists(), f"{doc.name} links {target}"


def test_the_readme_offline_query_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The polars alternative to DuckDB's network install reads a synced table's live rows
    (a row marked deleted is not summed)."""
    snippet = re.search(r'pl\.read_delta\("data/sandbox-lake/deals"\)\.sql\(.*\)', README)
    assert snippet is not None
    lake = tmp_path / "data" / "sandbox-lake"
    gone = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    pl.DataFrame({"id": ["a", "b", "c"], "stage": ["won", "won", "won"],
                  "amount": [1.5, 2.0, 10.0], "_deleted_at": [None, None, gone]},
                 schema_overrides={"_deleted_at": pl.Datetime("us", "UTC")}).write_delta(
        str(lake / "deals"))
    monkeypatch.chdir(tmp_path)
    result = eval(snippet.group(0), {"pl": pl})  # the README's own line, nothing else
    assert result.to_dicts() == [{"stage": "won", "amount": 3.5}]
    assert "network" in README.split("DuckDB", 1)[1][:200]
    assert Lake(str(lake)).version("deals") == 0


# --- defect 10: commands that need block documents, not a server, start none --------------


@pytest.mark.slow
def test_secrets_check_and_state_use_prefect_blocks_without_starting_a_temporary_server(
        sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Blocks saved by `secrets`, read by `check`, reset and shown by `state`: one database, and
    none of the commands starts Prefect's temporary server (4-20 s each before)."""
    lake = tmp_path / "lake"
    pl.DataFrame({"id": ["d1"]}).write_delta(str(lake / "deals"))
    secrets = _cli("secrets", "--base-url", sandbox.base_url, tmp_path=tmp_path, timeout=180,
                   extra_env={"ANALYTICS_API_KEY": sandbox.api_key,
                              "ANALYTICS_ORGANIZATION_ID": sandbox.organization_id})
    check = _cli("check", "--base-url", sandbox.base_url, "--lake", str(lake),
                 tmp_path=tmp_path, timeout=180)
    reset = _cli("state", "reset", "deals", "--lake", str(lake), tmp_path=tmp_path, timeout=180)
    show = _cli("state", "show", "--lake", str(lake), tmp_path=tmp_path, timeout=180)
    for done in (secrets, check, reset, show):
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "temporary server" not in done.stderr
    assert check.stdout.count(" ok ") == 5  # the key and organization came from the blocks
    assert ("secrets: API key from Prefect Secret block 'analytics-api-key'; organization id "
            "from Prefect Secret block 'analytics-organization-id'") in check.stdout
    assert "reset analytics/deals" in reset.stdout
    assert "deals: block cursor -, table cursor - (version 0)" in show.stdout
    assert "next run: the mark was reset: full read" in show.stdout


# --- issue 23, item 9: each command's own help -----------------------------------------------

# What each command must offer (README "Commands"), and options it must not show.
_OWN = {"run": ({"--full-refresh", "--batch-rows", "--resources", "--sandbox"}, {"--all"}),
        "check": ({"--resources", "--sandbox", "--lake"}, {"--full-refresh", "--all"}),
        "secrets": ({"--base-url", "--api-key-block", "--organization-block"},
                    {"--lake", "--sandbox", "--full-refresh"}),
        "state": ({"--all", "--pipeline", "--lake", "--sandbox"}, {"--full-refresh",
                                                                   "--batch-rows"}),
        "quarantine": ({"--pipeline", "--lake", "--sandbox"}, {"--full-refresh", "--all"})}


@pytest.mark.parametrize("command", sorted(_OWN))
def test_each_command_has_its_own_help_with_its_options_and_an_example(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python flows/main.py {command} ")
    shown = set(re.findall(r"^  (--[a-z-]+)", text, re.MULTILINE))
    must, must_not = _OWN[command]
    assert must <= shown and not must_not & shown, (shown, text)
    [example] = re.findall(r"^example:\n  python flows/main.py (.*)$", text, re.MULTILINE)
    argv = example.split()
    assert argv[0] == command
    assert _parser().parse_args(argv).command == command  # the example is valid usage
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert top != text and all(f"    {c}" in top for c in _OWN)


def test_a_command_named_after_its_options_is_still_that_command() -> None:
    args = _parser().parse_args(["--lake", "x", "--pipeline", "state", "state", "show"])
    assert (args.command, args.args, args.lake, args.pipeline) == ("state", ["show"], "x", "state")
    assert _parser().parse_args(["--sandbox"]).command == "run"
