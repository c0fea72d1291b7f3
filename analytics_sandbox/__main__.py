"""Command line: serve the sandbox API, or ask a running one for its truth, an advance, its
stats."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from .app import PAGINATIONS, FaultRule, SandboxApp, SandboxSettings
from .profiles import PROFILES
from .server import bind, default_http, url_of, uvicorn_server
from .world import DEFAULT_COUNTS, RESOURCES, World

_DESCRIPTION = """\
The bundled sandbox of the analytics API: serves /v1/{tags,deals,pages,tasks,users}
exactly as docs/sandbox.md and the API contract describe, from a deterministic
world of records, with switchable latency, rate limiting and faults.

  serve     run the API (prints one JSON line with base_url, api_key, organization_id)
  truth     print a running sandbox's records of one resource (JSON list, by id)
  advance   move a running sandbox's world forward: update, create and delete records
  deleted   print the ids a running sandbox deleted from one resource (JSON list, sorted)
  stats     print a running sandbox's request counts by resource and status
"""


def _count(text: str) -> tuple[str, int]:
    resource, sep, number = text.partition("=")
    if not sep or resource not in RESOURCES or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected RESOURCE=N with RESOURCE in {RESOURCES}")
    return resource, int(number)


def _faults(text: str) -> list[FaultRule]:
    try:
        return [FaultRule.parse(rule) for rule in json.loads(text)]
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"--faults must be a JSON list of rules: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analytics_sandbox",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    defaults = SandboxSettings()
    flag = argparse.BooleanOptionalAction

    serve = commands.add_parser(
        "serve",
        help="run the sandbox API",
        description="Run the sandbox API with uvicorn. Once it listens it prints one JSON "
        'line, {"base_url": ..., "api_key": ..., "organization_id": ...}, on stdout.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    where = serve.add_argument_group("where")
    where.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    where.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    where.add_argument(
        "--http", choices=("h11", "httptools"), default=None,
        help="uvicorn HTTP implementation (default: httptools when installed, else h11)",
    )  # fmt: skip
    data = serve.add_argument_group("data")
    data.add_argument("--seed", type=int, default=0, help="seed of the generated world")
    data.add_argument(
        "--scale", type=float, default=1.0,
        help="multiply every resource's record count (default counts: "
        + ", ".join(f"{r} {n}" for r, n in DEFAULT_COUNTS.items()) + ")",
    )  # fmt: skip
    data.add_argument(
        "--count", type=_count, action="append", default=[], metavar="RESOURCE=N",
        help="record count of one resource before --scale (repeatable)",
    )  # fmt: skip
    data.add_argument(
        "--profile", choices=PROFILES, default="default",
        help="how rich the records are: rich adds nested custom_fields, undocumented fields of "
        "varying type, long lists and unicode text (docs/sandbox.md)",
    )  # fmt: skip
    auth = serve.add_argument_group("credentials")
    auth.add_argument("--api-key", default=defaults.api_key)
    auth.add_argument("--organization-id", default=defaults.organization_id)
    auth.add_argument("--oauth-client-id", default="",
                      help="serve OAuth2 client-credentials tokens at POST /oauth/token "
                      "to this client (off when empty)")
    auth.add_argument("--oauth-client-secret", default="")
    auth.add_argument("--oauth-token-ttl", type=float, default=defaults.oauth_token_ttl,
                      help="seconds a token lives (expires_in)")
    auth.add_argument("--oauth-token-uses", type=int, default=0,
                      help="API requests a token serves before it is refused (0: no limit)")
    behaviour = serve.add_argument_group(
        "behaviour (all changeable at runtime: POST /_admin/settings)"
    )
    behaviour.add_argument("--latency-ms", type=float, default=0.0, help="delay per API request")
    behaviour.add_argument(
        "--rate-limit", type=float, default=0.0,
        help="requests per second per key (token bucket); 0 = unlimited",
    )  # fmt: skip
    behaviour.add_argument(
        "--fault-rate", type=float, default=0.0, help="probability of a 500/502/503/504"
    )
    behaviour.add_argument(
        "--reset-rate", type=float, default=0.0,
        help="probability of dropping the connection mid-body",
    )  # fmt: skip
    behaviour.add_argument(
        "--omit-meta", action=flag, default=False, help="serve no meta and no links"
    )
    behaviour.add_argument(
        "--pagination", choices=PAGINATIONS, default="page_number",
        help="how pages are served (a request's ?pagination= wins): " + ", ".join(PAGINATIONS),
    )  # fmt: skip
    behaviour.add_argument(
        "--late-visibility", action=flag, default=True,
        help="stamp some changes up to 5 s before the latest visible updated_at",
    )  # fmt: skip
    behaviour.add_argument(
        "--mutate-every-n-requests", type=int, default=0,
        help="advance the requested resource after every n-th page served; 0 = never",
    )  # fmt: skip
    behaviour.add_argument(
        "--mutate-rate", type=float, default=0.0,
        help="probability of advancing the requested resource after a page",
    )  # fmt: skip
    behaviour.add_argument("--mutate-updates", type=int, default=defaults.mutate_updates)
    behaviour.add_argument("--mutate-creates", type=int, default=defaults.mutate_creates)
    behaviour.add_argument(
        "--mutate-deletes", type=int, default=defaults.mutate_deletes,
        help="records each mutate-mode advance deletes (gone from every listing and count)",
    )  # fmt: skip
    behaviour.add_argument("--fault-seed", type=int, default=0, help="seed of injected faults")
    behaviour.add_argument(
        "--faults", type=_faults, default=[], metavar="JSON",
        help='scripted faults, e.g. \'[{"kind": "status", "status": 503, "resource": '
        '"deals", "page": 3, "times": 2}]\'',
    )  # fmt: skip

    truth = commands.add_parser("truth", help="print the records of one resource")
    truth.add_argument("--url", required=True, help="base URL of a running sandbox")
    truth.add_argument("resource", choices=RESOURCES)

    advance = commands.add_parser("advance", help="update, create and delete records")
    advance.add_argument("--url", required=True, help="base URL of a running sandbox")
    advance.add_argument("--updates", type=int, default=0, help="records to update per resource")
    advance.add_argument("--creates", type=int, default=0, help="records to create per resource")
    advance.add_argument("--deletes", type=int, default=0, help="records to delete per resource")
    advance.add_argument(
        "--resource", action="append", choices=RESOURCES, dest="resources",
        help="only this resource (repeatable; default all)",
    )  # fmt: skip
    advance.add_argument("--seed", type=int, default=None, help="seed of this advance")

    deleted = commands.add_parser("deleted", help="print the ids deleted from one resource")
    deleted.add_argument("--url", required=True, help="base URL of a running sandbox")
    deleted.add_argument("resource", choices=RESOURCES)

    stats = commands.add_parser("stats", help="print request counts by resource and status")
    stats.add_argument("--url", required=True, help="base URL of a running sandbox")
    return parser


def _serve(args: argparse.Namespace) -> int:
    world = World(args.seed, counts=dict(args.count), scale=args.scale,
                  profile=args.profile)
    # Every setting has a flag of the same name.
    settings = SandboxSettings(**{f.name: getattr(args, f.name)
                                  for f in dataclasses.fields(SandboxSettings)})
    app = SandboxApp(world, settings)
    app.set_faults(args.faults)
    sock = bind(args.host, args.port)
    announcement = {
        "base_url": url_of(sock),
        "api_key": settings.api_key,
        "organization_id": settings.organization_id,
        "http": args.http or default_http(),
    }
    print(json.dumps(announcement), flush=True)
    uvicorn_server(app, http=args.http, quiet=False).run(sockets=[sock])
    return 0


def _call(method: str, url: str, body: Any = None) -> int:
    try:
        response = httpx.request(method, url, json=body, timeout=60)
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the sandbox at {url}: {exc}", file=sys.stderr)
        return 1
    if response.is_error:
        print(f"error: {response.status_code} from {url}: {response.text[:500]}", file=sys.stderr)
        return 1
    sys.stdout.write(response.text + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    url = args.url.rstrip("/")
    if args.command == "truth":
        return _call("GET", f"{url}/_admin/truth/{args.resource}")
    if args.command == "advance":
        body = {"updates": args.updates, "creates": args.creates, "deletes": args.deletes,
                "seed": args.seed}
        if args.resources:
            body["resources"] = args.resources
        return _call("POST", f"{url}/_admin/advance", body)
    if args.command == "deleted":
        return _call("GET", f"{url}/_admin/deleted/{args.resource}")
    return _call("GET", f"{url}/_admin/stats")


if __name__ == "__main__":
    sys.exit(main())
