"""What a run that finds nothing new costs, on the README's path (issue 24, item 4).

    uv run python bench/noop_run.py            # 5 no-op runs per mode, after one full load each
    uv run python bench/noop_run.py --runs 9 --modes shared

The command is the README's, ``uv run python flows/main.py --sandbox`` (with ``--lake`` in a
temporary directory), in a fresh ``PREFECT_HOME`` per mode. Each mode first runs it once (the
full load, not counted), then ``--runs`` times more: each of those is a no-op incremental run
(five resources, one read and one count probe each). Modes, as a user meets Prefect:

* ``shared``: no ``PREFECT_API_URL``; the first command starts the temporary server, which the
  next ones use (the default since issue 24: ``ANALYTICS_SYNC_SERVER_IDLE_SECONDS``).
* ``per-command``: no ``PREFECT_API_URL`` and ``ANALYTICS_SYNC_SERVER_IDLE_SECONDS=0``: each
  command starts its own temporary server and stops it (the behaviour before).
* ``long-lived``: ``prefect server start`` beforehand and ``PREFECT_API_URL`` (a deployment's).

Per run: wall seconds (launch to exit), CPU seconds of the command's process tree (user +
system of it and every descendant it waited for: the sandbox, a per-command server), and,
where the server outlives the command, the server's CPU seconds during the run (from
``/proc/<pid>/stat``), counted in "CPU incl. Prefect". Medians; nothing here is a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import prefect_server  # noqa: E402  (the bench's long-lived server)

TICKS = os.sysconf("SC_CLK_TCK")


def _command(lake: Path) -> list[str]:
    uv = shutil.which("uv")
    head = [uv, "run", "--locked", "python"] if uv else [sys.executable]
    return [*head, "flows/main.py", "--sandbox", "--lake", str(lake)]


def _cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _server_pid(home: Path) -> int | None:
    """The shared temporary server's pid (analytics_client/orchestration/shared_server.py)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        return int(json.loads((home / "analytics-sync-server" / "server.json").read_text())["pid"])
    return None


def _run(command: list[str], env: dict[str, str], server: int | None) -> dict[str, Any]:
    """One command: wall, CPU of its tree, the outliving server's CPU meanwhile."""
    before = os.times()
    server_before = _cpu(server) if server else 0.0
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    tree = (after.children_user - before.children_user) + (
        after.children_system - before.children_system)
    server_cpu = (_cpu(server) - server_before) if server else 0.0
    return {"wall": round(wall, 2), "cpu": round(tree, 2), "server_cpu": round(server_cpu, 2),
            "summary": [line for line in done.stdout.splitlines() if line.startswith("total")]}


def _mode(mode: str, runs: int, work: Path) -> dict[str, Any]:
    home, lake = work / f"home-{mode}", work / f"lake-{mode}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANALYTICS_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               ANALYTICS_SYNC_LOCK_DIR=str(work / f"locks-{mode}"))
    if mode == "per-command":
        env["ANALYTICS_SYNC_SERVER_IDLE_SECONDS"] = "0"
    command = _command(lake)
    results = []
    with contextlib.ExitStack() as stack:
        server: int | None = None
        if mode == "long-lived":
            long_lived = stack.enter_context(prefect_server(env, home, work / "server.log"))
            server = long_lived.process.pid
            env["PREFECT_API_URL"] = long_lived.api_url
        _run(command, env, server)  # the full load
        if mode == "shared":
            server = _server_pid(home)
        for _ in range(runs):
            results.append(_run(command, env, server))
            print(json.dumps({"mode": mode, **results[-1]}), file=sys.stderr, flush=True)
        if mode == "shared" and server:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server, signal.SIGTERM)
    walls = [r["wall"] for r in results]
    cpus = [r["cpu"] for r in results]
    totals = [r["cpu"] + r["server_cpu"] for r in results]
    return {"mode": mode, "runs": runs, "wall_median": statistics.median(walls),
            "wall_min": min(walls), "wall_max": max(walls),
            "cpu_median": statistics.median(cpus),
            "cpu_with_prefect_median": statistics.median(totals), "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/noop_run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default="shared,per-command,long-lived")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    try:
        found = [_mode(mode, args.runs, work) for mode in args.modes.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| mode | runs | wall s, median (min-max) | CPU s of the command, median | "
          "CPU s incl. Prefect's server, median |")
    print("|---|---:|---|---:|---:|")
    for f in found:
        print(f"| {f['mode']} | {f['runs']} | {f['wall_median']:.1f} ({f['wall_min']:.1f}-"
              f"{f['wall_max']:.1f}) | {f['cpu_median']:.1f} | "
              f"{f['cpu_with_prefect_median']:.1f} |")
    print(f"\nload average at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
