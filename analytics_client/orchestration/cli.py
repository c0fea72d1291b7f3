"""The command line of ``python flows/main.py``: run, check, secrets, state, quarantine.

The flow it runs is an argument (``main(argv, flow=analytics_sync)``): this module never
imports ``flows/``, and tests hand it the flow, or a stand-in, at the same seam.

    python flows/main.py --sandbox    # against the bundled sandbox API, into ./data/sandbox-lake
    python flows/main.py              # against client.base_url with the configured secrets
    python flows/main.py check        # validate config + secrets, one request per resource

Exit status: 0 every resource synced (or the command did what it says), 1 a resource or a
check failed, 2 bad usage, config or environment (one line on stderr), 3 the Prefect API went
away during the run (``api.EXIT_STATUS``), 128 + the signal (130, 143) for a run stopped by
Ctrl-C or SIGTERM (core/stop.py).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

# First, before Prefect is imported: importing this module sets Prefect's environment
# (server.PREFECT_DEFAULTS: no telemetry, our library's logs in the flow run's logs).
from analytics_client.orchestration.shared_server import use_temporary_server

# isort: split
import analytics_client.orchestration.api as prefect_api
from analytics_client.config import DEFAULT_BATCH_ROWS, DEFAULT_PIPELINE, SourceConfig, load_config
from analytics_client.config.cursorkind import cursor_kind
from analytics_client.core.credentials import (
    API_KEY_BLOCK,
    API_KEY_ENV,
    OPTIONAL_SECRETS,
    ORGANIZATION_BLOCK,
    ORGANIZATION_ENV,
    Credentials,
)
from analytics_client.core.cursors import codec_for
from analytics_client.core.debugging import set_debugging
from analytics_client.core.errors import (
    AnalyticsSyncError,
    ConfigError,
    LakeNotWritableError,
    PrefectStartError,
    PrefectWentAway,
)
from analytics_client.core.lock import pipeline_lock
from analytics_client.core.stop import on_signals
from analytics_client.http.origin import origin_text
from analytics_client.lake.preflight import ensure_lake_writable
from analytics_client.lake.quarantine import Quarantine
from analytics_client.lake.quarantine import render as render_quarantine
from analytics_client.lake.tables import Lake
from analytics_client.orchestration.marks import CommandMarkStore
from analytics_client.orchestration.secrets import resolve_credentials, store_credentials
from analytics_client.orchestration.storage import resolve_storage_options
from analytics_client.run.check import check_source
from analytics_client.run.sync import replay_quarantine
from analytics_client.state.marks import MarkStore, describe, reset

if TYPE_CHECKING:
    from prefect.states import State

__all__ = ["COMMANDS", "DEFAULT_LAKE", "SANDBOX_LAKE", "SyncFlow", "build_parser", "main"]

# The analytics-sync flow (flows/main.py), called with its parameters and return_state=True.
SyncFlow = Callable[..., "State[Any]"]

DEFAULT_LAKE = "./data/lake"
SANDBOX_LAKE = "./data/sandbox-lake"


COMMANDS = ("run", "check", "secrets", "state", "quarantine")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class _CommandParser(_Parser):
    """The top level: ``run`` is the command when none is named (``python flows/main.py
    --sandbox``), and a command named after options (``--lake X state show``) still counts."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        parsed, rest = super().parse_known_args(_command_first(argv), namespace)
        for name, value in _DEFAULTS.items():  # options another command does not have
            if not hasattr(parsed, name):
                setattr(parsed, name, value)
        return parsed, rest


def _command_first(argv: list[str]) -> list[str]:
    """``argv`` with its command in front: the first word that is not an option's value, else
    ``run`` (the top-level help stays the top level's)."""
    takes_value = {"--base-url", "--lake", "--resources", "--config", "--pipeline",
                   "--api-key-block", "--organization-block", "--storage-block", "--batch-rows",
                   "--sandbox-scale"}
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in COMMANDS:
            return [word, *argv[:index], *argv[index + 1:]]
        if word == "--":
            break
        index += 2 if word in takes_value else 1
    if not argv or argv[0] not in ("-h", "--help"):
        return ["run", *argv]
    return argv


def _positive_int(text: str) -> int:
    """An option value that counts something: ``--batch-rows 0`` would commit empty batches."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number above 0")
    return value


_SECRETS_TEXT = (
    "Secrets: the Prefect Secret blocks 'analytics-api-key' and 'analytics-organization-id' "
    "stored for the run's API (its scheme, host and port), else ANALYTICS_API_KEY and "
    "ANALYTICS_ORGANIZATION_ID; a block stored for another API is never sent.")
_EXIT_TEXT = (
    "Exit status: 0 when every resource synced, 1 when any failed, 2 for bad usage or config, "
    "3 when the Prefect API went away during the run (the data is safe; run again), 130/143 "
    "after Ctrl-C/SIGTERM.")

# Each command: (one-line summary, what it does, one example).
_COMMAND_HELP = {
    "run": ("sync (the default command)",
            "Sync the configured resources into Delta tables at <lake>/<resource>: each reads "
            "what changed since its committed mark (--full-refresh: everything), in one Prefect "
            "flow run; the summary goes to stdout, the log to stderr.",
            "python flows/main.py run --sandbox --resources deals,users"),
    "check": ("validate config, secrets and the lake; one request per resource",
              "Check the config, the secrets, that the lake can be written and each resource's "
              "first request exactly as a run sends it; writes nothing.",
              "python flows/main.py check --base-url https://api.example.com"),
    "secrets": ("store the API's secrets as Prefect Secret blocks",
                "Create or update the Prefect Secret blocks for the API at --base-url (else "
                "ANALYTICS_BASE_URL, else client.base_url) from ANALYTICS_API_KEY / "
                "ANALYTICS_ORGANIZATION_ID (and the OAuth2 pair with --config) or a hidden "
                "prompt; never from the command line. A run against another API never sends "
                "them.",
                "python flows/main.py secrets --base-url https://api.example.com"),
    "state": ("show or reset the resources' marks",
              "state show: every resource's mark (block and table) and what the next run reads; "
              "state reset RESOURCE... | --all: the next run reads them in full. Use the "
              "--pipeline, --lake (or --sandbox) of the run whose marks you mean.",
              "python flows/main.py state show --sandbox"),
    "quarantine": ("show or replay records set aside",
                   "quarantine show [RESOURCE]: the records set aside in <lake>/_quarantine; "
                   "quarantine replay [RESOURCE...]: write them again through the current "
                   "config (a record older than its row is skipped).",
                   "python flows/main.py quarantine show deals --sandbox"),
}


def _add(parser: argparse.ArgumentParser, option: str) -> None:
    """One option of the command line, defined once for every command that takes it."""
    if option == "--sandbox":
        parser.add_argument("--sandbox", action="store_true",
                            help="the bundled sandbox API on a free loopback port, its own "
                            f"credentials, pipeline 'sandbox' and lake {SANDBOX_LAKE}")
    elif option == "--sandbox-scale":
        parser.add_argument("--sandbox-scale", type=_positive_float, default=1.0,
                            help="with --sandbox: dataset size factor (1 = 27,250 records)")
    elif option == "--base-url":
        parser.add_argument("--base-url", default=os.environ.get("ANALYTICS_BASE_URL"),
                            help="API base URL (env ANALYTICS_BASE_URL; default: "
                            "client.base_url)")
    elif option == "--lake":
        parser.add_argument("--lake", default=os.environ.get("ANALYTICS_LAKE_URI"),
                            help="lake path or URI, tables at <lake>/<resource> (env "
                            f"ANALYTICS_LAKE_URI; default {DEFAULT_LAKE})")
    elif option == "--resources":
        parser.add_argument("--resources", help="comma-separated subset, e.g. deals,users")
    elif option == "--config":
        parser.add_argument("--config", help="dlt rest_api_source config as a JSON or YAML "
                            "file (default: the seed configuration)")
    elif option == "--pipeline":
        parser.add_argument("--pipeline", default=None,
                            help="pipeline name: marks are kept per pipeline (default analytics; "
                            "sandbox with --sandbox, so demo marks never mix with real ones)")
    elif option == "--api-key-block":
        parser.add_argument("--api-key-block", default=API_KEY_BLOCK,
                            help=f"Prefect Secret block of the API key (default {API_KEY_BLOCK})")
    elif option == "--organization-block":
        parser.add_argument("--organization-block", default=ORGANIZATION_BLOCK,
                            help="Prefect Secret block of the organization id "
                            f"(default {ORGANIZATION_BLOCK})")
    elif option == "--storage-block":
        parser.add_argument("--storage-block", default=os.environ.get("ANALYTICS_STORAGE_BLOCK"),
                            help="Analytics Lake Storage block with the object store's "
                            "credentials (env ANALYTICS_STORAGE_BLOCK; default: the standard "
                            "AWS_/GOOGLE_/AZURE_ environment variables)")
    elif option == "--batch-rows":
        parser.add_argument("--batch-rows", type=_positive_int, default=DEFAULT_BATCH_ROWS,
                            help=f"records per Delta commit (bounds memory; default "
                            f"{DEFAULT_BATCH_ROWS})")
    elif option == "--full-refresh":
        parser.add_argument("--full-refresh", action="store_true",
                            help="ignore the marks: re-read everything (with --resources, just "
                            "those)")
    elif option == "--all":
        parser.add_argument("--all", action="store_true", help="with reset: every resource")
    elif option == "--debug":
        parser.add_argument("--debug", action="store_true",
                            help="show tracebacks besides the one-line errors "
                            "(env ANALYTICS_SYNC_DEBUG=1)")
    else:  # pragma: no cover - a typo in _OPTIONS
        raise ValueError(option)


_WHERE = ("--config", "--base-url", "--pipeline", "--lake", "--storage-block", "--sandbox")
_OPTIONS = {
    "run": (*_WHERE, "--resources", "--full-refresh", "--batch-rows", "--api-key-block",
            "--organization-block", "--sandbox-scale", "--debug"),
    "check": (*_WHERE, "--resources", "--api-key-block", "--organization-block",
              "--sandbox-scale", "--debug"),
    "secrets": ("--base-url", "--config", "--api-key-block", "--organization-block", "--debug"),
    "state": (*_WHERE, "--all", "--debug"),
    "quarantine": (*_WHERE, "--debug"),
}
_POSITIONAL = {"state": ("show | reset", "show, or reset and resource names"),
               "quarantine": ("show | replay", "show [RESOURCE] or replay [RESOURCE...]")}
# Every option's value when the command has no such option (one namespace for _dispatch).
_DEFAULTS: dict[str, Any] = {
    "args": [], "all": False, "full_refresh": False, "sandbox": False, "base_url": None,
    "lake": None, "resources": None, "config": None, "pipeline": None,
    "api_key_block": API_KEY_BLOCK, "organization_block": ORGANIZATION_BLOCK,
    "storage_block": None, "batch_rows": DEFAULT_BATCH_ROWS, "debug": False,
    "sandbox_scale": 1.0,
}


def build_parser() -> argparse.ArgumentParser:
    """The commands and options of ``python flows/main.py``: ``--help`` lists the commands,
    ``COMMAND --help`` that command's options and an example."""
    parser = _CommandParser(
        prog="python flows/main.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sync tags, deals, pages, tasks and users from the analytics API into Delta "
        "Lake tables (one Prefect flow run).\n\n"
        "  python flows/main.py --sandbox       sync the bundled sandbox API (run is the default)\n"
        "  python flows/main.py COMMAND --help  a command's options and an example",
        epilog=textwrap.fill(_SECRETS_TEXT) + "\n" + textwrap.fill(_EXIT_TEXT),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                     parser_class=_Parser)
    for name, (summary, description, example) in _COMMAND_HELP.items():
        sub = commands.add_parser(
            name, help=summary, description=textwrap.fill(description),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"example:\n  {example}" + (
                "\n\n" + textwrap.fill(_SECRETS_TEXT) if name in ("run", "check") else ""))
        if name in _POSITIONAL:
            metavar, text = _POSITIONAL[name]
            sub.add_argument("args", nargs="*", metavar=metavar, help=text)
        for option in _OPTIONS[name]:
            _add(sub, option)
    return parser


@contextlib.contextmanager
def _sandbox(enabled: bool, scale: float) -> Iterator[str | None]:
    """Start the sandbox and point this process's environment at it for the run only."""
    if not enabled:
        yield None
        return
    from analytics_sandbox import serve_subprocess

    with serve_subprocess(scale=scale, own_session=True) as server:
        saved = {k: os.environ.get(k) for k in (API_KEY_ENV, ORGANIZATION_ENV)}
        os.environ[API_KEY_ENV] = server.api_key
        os.environ[ORGANIZATION_ENV] = server.organization_id
        print(f"sandbox API serving at {server.base_url}", flush=True)
        try:
            yield server.base_url
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def main(argv: list[str] | None = None, *, flow: SyncFlow) -> int:
    """The command line around ``flow``: a usage, config or environment problem is one line and
    exit 2."""
    args = build_parser().parse_args(argv)
    set_debugging(args.debug)
    args.pipeline = args.pipeline or ("sandbox" if args.sandbox else DEFAULT_PIPELINE)
    try:
        return _dispatch(args, flow)
    except ConfigError as exc:  # one problem, one line; several, one line each
        if len(exc.problems) == 1:
            print(f"error: invalid source configuration: {exc.problems[0]}", file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except AnalyticsSyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the run's own handler is in place (or after it ended)
        print("stopped: interrupted (Ctrl-C) outside the run; nothing more was fetched",
              file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as exc:
        # Prefect raises a bare RuntimeError (and 35 lines of traceback) when its temporary
        # server does not answer in time; the user needs one sentence and a way out.
        if isinstance(exc, RuntimeError) and "ephemeral Prefect API server" in str(exc):
            print(f"error: {PrefectStartError(_startup_timeout())}", file=sys.stderr)
            return 2
        if not prefect_api.is_outage(exc):  # the flow engine itself lost the Prefect API
            raise
        print(f"error: {prefect_api.outage_message(exc)}", file=sys.stderr)
        return prefect_api.EXIT_STATUS


def _dispatch(args: argparse.Namespace, flow: SyncFlow) -> int:
    if args.command == "secrets":
        return _store_secrets(args)
    if args.command == "state":
        return _state(args)
    if args.command == "quarantine":
        return _quarantine(args)
    if args.args:
        print(f"error: unexpected arguments {args.args}", file=sys.stderr)
        return 2
    resources = ([r.strip() for r in args.resources.split(",") if r.strip()]
                 if args.resources else None)
    lake_uri = _lake_uri(args)
    # With --sandbox the secrets are the sandbox's, from the environment, never a real block.
    key_block = None if args.sandbox else args.api_key_block
    org_block = None if args.sandbox else args.organization_block
    with _sandbox(args.sandbox, args.sandbox_scale) as sandbox_url:
        base_url = sandbox_url or args.base_url
        source = load_config(args.config, base_url=base_url).select(resources)
        lake = Lake(lake_uri, storage_options=resolve_storage_options(lake_uri, args.storage_block))
        if args.command == "check":
            return _check(source, lake, key_block, org_block)
        # Everything a run can know before its first request is checked before Prefect starts.
        ensure_lake_writable(lake, [r.name for r in source.resources])
        # Prefect's temporary server, shared with this machine's next commands for a while
        # (spared by Ctrl-C; shared_server.py), unless PREFECT_API_URL names a server.
        said = use_temporary_server()
        if said:
            print(said, flush=True)
        # a second run fails now, not after Prefect starts
        with pipeline_lock(args.pipeline, [r.name for r in source.resources]), \
                prefect_api.bounded_retries(), \
                on_signals() as stop:
            # Ctrl-C / SIGTERM stop the run after the current page of each resource (stop.py).
            # Said by the flow, which resolves them again: here only to fail before it starts.
            resolve_credentials(key_block, org_block, base_url=source.client.base_url,
                                needs=source.secret_names(), log=None)
            state = flow(
                pipeline=args.pipeline, lake_uri=lake_uri, resources=resources,
                config=args.config, base_url=base_url, api_key_block=key_block,
                organization_id_block=org_block, batch_rows=args.batch_rows,
                full_refresh=args.full_refresh, storage_block=args.storage_block,
                return_state=True,
            )
    if state.is_cancelled() or stop.requested:
        print(f"stopped: {state.message}", file=sys.stderr)
        return 128 + (stop.signum or signal.SIGINT)
    if state.is_completed():
        print(f"done: tables under {lake.uri}")
        return 0
    result = state.result(raise_on_failure=False)
    if isinstance(result, PrefectWentAway) or prefect_api.is_outage(result):
        message = str(result) if isinstance(result, PrefectWentAway) else \
            prefect_api.outage_message(result)
        print(f"error: {message}", file=sys.stderr)
        return prefect_api.EXIT_STATUS
    print(f"error: {state.message}", file=sys.stderr)
    return 1


def _lake_uri(args: argparse.Namespace) -> str:
    """One answer for run, check and state: `state --sandbox` must look where the run wrote."""
    return args.lake or (SANDBOX_LAKE if args.sandbox else DEFAULT_LAKE)


def _startup_timeout() -> int | None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    seconds: int | None = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()  # typed Any
    return seconds


# Each secret `secrets` may store: (name in Credentials and the config, what, variable).
_STORED = (("api_key", "API key", API_KEY_ENV),
           ("organization_id", "organization id", ORGANIZATION_ENV),
           *((name, what, env) for name, (what, _, env) in OPTIONAL_SECRETS.items()))


def _store_secrets(args: argparse.Namespace) -> int:
    """The secrets the config's auth needs, bound to its API (``--base-url``, else the config's
    ``client.base_url``). They come from the environment or a hidden prompt, never from
    arguments (shell history)."""
    import getpass

    source = load_config(args.config, base_url=args.base_url)
    needs = set(source.secret_names())
    values: dict[str, str] = {}
    for name, what, env in _STORED:
        if name not in needs:
            continue
        value = os.environ.get(env, "").strip()
        if not value and not sys.stdin.isatty():
            print(f"error: no {what}: set {env} (there is no terminal to prompt on)",
                  file=sys.stderr)
            return 2
        if not value:
            try:
                value = getpass.getpass(f"{what} (input hidden): ").strip()
            except EOFError:
                value = ""
        if not value:
            print(f"error: no {what} given (set {env} or type it at the prompt)", file=sys.stderr)
            return 2
        values[name] = value
    credentials = Credentials(api_key=values.pop("api_key", ""), **values)
    with prefect_api.command_api() as api:  # block documents: no temporary server
        names = store_credentials(credentials, args.api_key_block, args.organization_block,
                                  base_url=source.client.base_url, api=api)
    print(f"saved Prefect Secret blocks {', '.join(map(repr, names))} for the API at "
          f"{origin_text(source.client.base_url)}: a run against another API never sends them")
    return 0


_STATE_USAGE = "use `state show`, `state reset RESOURCE...` or `state reset --all`"


def _state(args: argparse.Namespace) -> int:
    """Show or reset marks; usage and resource names are checked before Prefect is asked."""
    action, *names = args.args or ["show"]
    valid = (action == "show" and not names and not args.all) or (
        action == "reset" and bool(names) != args.all)
    if not valid:
        print(f"error: {_STATE_USAGE}", file=sys.stderr)
        return 2
    source = load_config(args.config, base_url=args.base_url)
    known = [r.name for r in source.resources]
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"error: state reset: no resource named {', '.join(map(repr, unknown))}; "
              f"configured: {', '.join(known)}", file=sys.stderr)
        return 2
    uri = _lake_uri(args)
    lake = Lake(uri, storage_options=resolve_storage_options(uri, args.storage_block))
    with prefect_api.command_api() as api:  # a few block documents: no temporary server
        store = CommandMarkStore(api)
        return _show(args.pipeline, source, lake, store) if action == "show" else \
            _reset(args.pipeline, known if args.all else list(dict.fromkeys(names)), store)


def _show(pipeline: str, source: SourceConfig, lake: Lake, store: MarkStore) -> int:
    print(f"pipeline {pipeline!r}, lake {lake.uri}")
    for resource in source.resources:
        incremental = resource.endpoint.incremental
        info = describe(lake, pipeline, resource.name, store,
                        incremental.initial_value if incremental else None,
                        codec_for(cursor_kind(resource)))
        print(f"  {resource.name}: block cursor {info['block_cursor'] or '-'}, table cursor "
              f"{info['table_cursor'] or '-'} (version {info['table_version']}), last success "
              f"{info['last_success_at'] or '-'}\n      next run: {info['next_run']}")
    return 0


def _reset(pipeline: str, names: list[str], store: MarkStore) -> int:
    for name in names:
        reset(store, pipeline, name)
        print(f"reset {pipeline}/{name}: the next run reads it in full")
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    action, *names = args.args or ["show"]
    uri = _lake_uri(args)
    lake = Lake(uri, storage_options=resolve_storage_options(uri, args.storage_block))
    if action == "show" and len(names) <= 1:
        print(render_quarantine(Quarantine(lake, args.pipeline).read(*names)))
        return 0
    if action == "replay":
        source = load_config(args.config, base_url=args.base_url).select(names or None)
        for resource in source.resources:
            print(f"{resource.name}: {replay_quarantine(lake, resource, args.pipeline)}")
        return 0
    print("error: use `quarantine show [RESOURCE]` or `quarantine replay [RESOURCE...]`",
          file=sys.stderr)
    return 2


def _check(source: SourceConfig, lake: Lake, key_block: str | None, org_block: str | None) -> int:
    # Sources are printed below; a warning (an unbound block used) goes to stderr as logged.
    base_url, needs = source.client.base_url, source.secret_names()
    if key_block or org_block:
        with prefect_api.command_api() as api:  # Secret blocks, no temporary server
            credentials = resolve_credentials(key_block, org_block, base_url=base_url, api=api,
                                              needs=needs)
    else:
        credentials = resolve_credentials(None, None, base_url=base_url, needs=needs)
    print(f"config ok: {len(source.resources)} resources at {source.client.base_url}")
    print(f"secrets: {credentials.sources}")
    try:
        ensure_lake_writable(lake, [r.name for r in source.resources])
        lake_ok, lake_line = True, f"lake: {lake.uri} can be written"
    except LakeNotWritableError as exc:
        lake_ok, lake_line = False, f"lake: FAIL {exc}"
    print(lake_line)
    results = check_source(source, credentials)
    for result in results:
        print(f"  {result.resource:<12} {'ok  ' if result.ok else 'FAIL'} {result.message}")
    return 0 if lake_ok and all(r.ok for r in results) else 1
