"""Benchmark harness: raw httpx, our library, our Prefect flow and dlt, side by side.

    uv run --group bench python bench/run.py --scale 1 --repeat 3          # the full matrix
    uv run python bench/run.py --scale 10 --repeat 1 --scenarios full   # no bench group: no dlt
    uv run python bench/run.py --scale 1 --latency-ms 20 --rate-limit 100  # one custom scenario
    uv run python bench/run.py --report bench/results/A.json bench/results/B.json > bench/RESULTS.md
    uv run python bench/run.py --targets library,flow --prefect long-lived,temporary  # both ways

The sandbox API runs in its own process (``serve_subprocess``) for each scenario. Every
measured run is a separate process with a fresh lake directory and pipeline name (so every
"full" run is really full and nothing is cached in the client), launched one after the other:

| target | process |
|---|---|
| raw | ``bench/targets/raw.py``: plain httpx, one thread per resource, no storage |
| library | ``bench/targets/library.py``: ``run_sync`` (fetch, frames, Delta merge), no Prefect |
| flow | ``flows/main.py`` (the whole Prefect flow; Prefect's API as ``--prefect`` says) |
| dlt | ``bench/targets/dlt_delta.py``: dlt ``rest_api_source`` into Delta (``bench`` group) |

The flow meets Prefect's API one of two ways (``--prefect``, both may be given):

- ``long-lived`` (the default, as a deployment runs it): one ``prefect server start`` on a free
  loopback port, started before the first flow run and outside every timed run (ready when its
  ``/api/health`` answers), ``PREFECT_API_URL`` pointing at it for every flow run, and the server
  with its process group stopped at the end, also on Ctrl-C, SIGTERM or a failed run. Its CPU
  during a run is recorded apart (``prefect_server_cpu_seconds``), not as the flow's.
- ``temporary``: no ``PREFECT_API_URL``, so each flow run starts Prefect's temporary server as a
  child (``flows/main.py`` via ``prefect_process``): ~40 s of each run on this machine, in the
  flow's wall time and process tree.

Each flow run records its mode (``prefect``; runs recorded before the option are
``temporary``), and the report keeps the modes apart: "Prefect's fixed start" is the flow's
full load minus the library's, from flow runs of the same mode.

Per run: wall time (launch to exit), peak RSS of the whole process tree (the largest sum of
VmRSS over the process and its descendants, sampled every 50 ms, and never below the main
process's own VmHWM), requests and 429s (the sandbox's ``/_admin/stats``, reset before each
run), the first and last request's arrival at the sandbox (its span is the API's view of
the run: the rate targets are judged over it, beside the whole process's wall time),
rows (rows in the Delta tables afterwards; rows fetched for raw; rows inserted + updated
for an incremental run). Each figure is the median over ``--repeat`` runs. Nothing here asserts a
time: targets are marked met or not met in the report.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
TARGETS = ("raw", "library", "flow", "dlt")
RESOURCES = ("tags", "deals", "pages", "tasks", "users")
PAGE_SIZE = 10  # the seed's; every target uses it
SAMPLE_SECONDS = 0.05
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
PREFECT_MODES = ("long-lived", "temporary")  # how the flow meets Prefect's API (--prefect)
PREFECT_START_TIMEOUT = 300.0  # seconds for the long-lived server's first /api/health
# The sandbox's rate limit is a token bucket that starts full: one second's worth at once
# (analytics_sandbox/app.py, _TokenBucket). Over a span of S seconds a client may make
# limit x (S + BURST_SECONDS) requests.
BURST_SECONDS = 1.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    latency_ms: float = 0.0
    rate_limit: float = 0.0
    fault_rate: float = 0.0
    reset_rate: float = 0.0
    incremental: bool = False
    changed_share: float = 0.01  # of each resource's records, between the two incremental runs
    profile: str = "default"  # the sandbox's record profile (docs/sandbox.md)
    # dlt's max_table_nesting for this scenario's dlt runs (None: dlt's default, 1000)
    dlt_max_table_nesting: int | None = None

    def sandbox_options(self) -> dict[str, Any]:
        """Runtime settings (``sandbox.configure`` takes them too)."""
        return {"latency_ms": self.latency_ms, "rate_limit": self.rate_limit,
                "fault_rate": self.fault_rate, "reset_rate": self.reset_rate}

    def world_options(self) -> dict[str, Any]:
        """Fixed when the sandbox starts."""
        return {"profile": self.profile} if self.profile != "default" else {}


PRESETS = {
    s.name: s for s in (
        Scenario("full", "full load, no latency, no rate limit"),
        Scenario("latency50", "full load, 50 ms latency per request", latency_ms=50),
        Scenario("latency200", "full load, 200 ms latency per request", latency_ms=200),
        Scenario("rate50", "full load, rate limit 50 req/s", rate_limit=50),
        Scenario("rate200-faults", "full load, rate limit 200 req/s, 0.5% 5xx, 0.5% resets",
                 rate_limit=200, fault_rate=0.005, reset_rate=0.005),
        # dlt with its default max_table_nesting (1000) makes a nested table of every list
        # at every path of the varying custom_fields: 490 Delta tables and 4,928 columns at
        # 0.02x (545 records), and no end at 1x (> 400 s). A dlt user caps the nesting for
        # such data: at 1, top-level lists (x_labels, x_history) stay nested tables, deeper
        # values are JSON: 19 tables.
        Scenario("rich", "full load of rich records (sandbox --profile rich: nested "
                 "custom_fields, undocumented fields of varying type, long lists, unicode; "
                 "dlt with max_table_nesting 1)", profile="rich", dlt_max_table_nesting=1),
        Scenario("incremental", "a full run, then 1% of each resource updated, then an "
                 "incremental run", incremental=True),
        # At 1x: as many changes as 1% at 10x, to see what the table's size alone costs.
        Scenario("incremental10", "a full run, then 10% of each resource updated, then an "
                 "incremental run", incremental=True, changed_share=0.10),
    )
}
INCREMENTAL_TARGETS = ("library", "flow")  # raw has no state; dlt's incremental is not configured


# --- measuring one process ------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces or parentheses: fields start after the last ')'
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _status_kib(pid: int, *names: bytes) -> list[int]:
    values = dict.fromkeys(names, 0)
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                key = line.split(b":", 1)[0]
                if key in values:
                    values[key] = int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return [values[n] for n in names]


def tree_rss(root: int, hwm: dict[int, int] | None = None) -> int:
    """Bytes of resident memory of ``root`` and all its descendants, now.

    ``hwm`` (pid -> bytes) is updated with each process's own peak (VmHWM) seen so far.
    """
    children = _children_map()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        rss, peak = _status_kib(pid, b"VmRSS", b"VmHWM")
        total += rss * 1024
        if hwm is not None and peak:
            hwm[pid] = max(hwm.get(pid, 0), peak * 1024)
        stack.extend(children.get(pid, ()))
    return total


def _tree_pids(root: int) -> list[int]:
    children = _children_map()
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, ()))
    return pids


def _kill_tree(root: int) -> None:
    for pid in _tree_pids(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every process), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by ``root`` and its living descendants (utime + stime each)."""
    return sum(process_cpu_seconds(pid) for pid in _tree_pids(root))


@dataclass
class Measured:
    returncode: int
    wall_seconds: float
    peak_rss_bytes: int
    main_peak_rss_bytes: int
    stdout: str
    stderr_tail: str
    cpu_seconds: float = 0.0  # the measured process tree's user + system time
    other_cpu_seconds: float = 0.0  # CPU time of everything else but the sandbox and this bench
    sampled_peak_bytes: int = 0  # the largest sum of VmRSS over the tree seen by sampling
    server_cpu_seconds: float | None = None  # the long-lived Prefect server's, during the run


def measure(argv: list[str], env: dict[str, str], cwd: Path, log: Path,
            timeout: float, sandbox_pid: int | None = None,
            server_pid: int | None = None) -> Measured:
    """Run ``argv`` to its end, sampling its process tree's RSS; never raises for its failure.

    ``server_pid``: a long-lived Prefect server the run talks to; its tree's CPU during the run
    is reported apart, not as other load. Interrupted (Ctrl-C, SIGTERM), the run's tree is
    killed before the interruption goes on.
    """
    out_path, err_path = log.with_suffix(".out"), log.with_suffix(".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        busy_before = busy_cpu_seconds()
        sandbox_before = process_cpu_seconds(sandbox_pid) if sandbox_pid else 0.0
        server_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
        self_before = sum(os.times()[:2])
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   env=env, cwd=cwd)
        peak, status, usage = 0, None, None
        hwm: dict[int, int] = {}
        try:
            while status is None:
                peak = max(peak, tree_rss(process.pid, hwm))
                pid, status_word, ru = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    status, usage = status_word, ru
                    break
                if time.perf_counter() - started > timeout:
                    _kill_tree(process.pid)
                    _, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(SAMPLE_SECONDS)
        except BaseException:  # no run outlives the harness
            if status is None:
                _kill_tree(process.pid)
                process.wait()
            raise
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        # the target's tree: wait4 counts the child and every descendant it waited for
        tree_cpu = (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0
        sandbox_cpu = (process_cpu_seconds(sandbox_pid) - sandbox_before) if sandbox_pid else 0.0
        server_cpu = (tree_cpu_seconds(server_pid) - server_before) if server_pid else None
        self_cpu = sum(os.times()[:2]) - self_before
        other = max(0.0, busy_cpu_seconds() - busy_before - tree_cpu - sandbox_cpu - self_cpu
                    - (server_cpu or 0.0))
    # Not wait4's ru_maxrss: on Linux it carries over the spawning parent's peak at exec.
    # VmHWM is the main process's own exact peak, up to the last sample (<= 50 ms before exit).
    main_peak = hwm.get(process.pid, 0)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    return Measured(process.returncode, wall, max(peak, main_peak), main_peak, stdout,
                    stderr[-3000:], cpu_seconds=tree_cpu, other_cpu_seconds=other,
                    sampled_peak_bytes=peak, server_cpu_seconds=server_cpu)


def last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return {}


def flow_totals(output: str) -> dict[str, int]:
    """Inserted and updated from the ``total`` line of the flow's summary table."""
    for line in reversed(output.splitlines()):
        cells = line.split()
        if len(cells) >= 6 and cells[0] == "total" and cells[1] in ("ok", "failed"):
            try:
                numbers = [int(c.replace(",", "")) for c in cells[2:6]]
            except ValueError:
                continue
            return {"pages": numbers[0], "rows_fetched": numbers[1], "inserted": numbers[2],
                    "updated": numbers[3]}
    return {}


def lake_rows(tables_dir: Path, resources: tuple[str, ...] = RESOURCES) -> int | None:
    """Rows in the Delta tables ``<tables_dir>/<resource>``, or None when one is missing."""
    from deltalake import DeltaTable

    total = 0
    for resource in resources:
        path = tables_dir / resource
        if not (path / "_delta_log").is_dir():
            return None
        table = DeltaTable(str(path))
        total += sum(int(n) for n in table.get_add_actions(flatten=True)
                     .column("num_records").to_pylist() if n is not None)
    return total


# --- the long-lived Prefect server ------------------------------------------------------------


@dataclass(frozen=True)
class PrefectServer:
    """A ``prefect server start`` of the bench's own, in a process group of its own."""

    process: subprocess.Popen[bytes]
    api_url: str  # http://127.0.0.1:<port>/api
    home: Path  # its PREFECT_HOME (its database), apart from the temporary servers'
    start_seconds: float  # launch to the first healthy /api/health


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """TERM the process's group, KILL it after 15 s; then KILL whatever is left in it."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # children left behind in the group
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def prefect_server(env: dict[str, str], home: Path, log: Path,
                   timeout: float = PREFECT_START_TIMEOUT) -> Iterator[PrefectServer]:
    """A long-lived Prefect server on a free loopback port, ready when yielded; stopped with
    its process group on leaving, however the bench ends (a failed run, Ctrl-C, SIGTERM).

    In a session of its own, so a terminal's Ctrl-C reaches the bench (which then stops the
    server after writing its results), not the server in the middle of a flow run. Raises
    RuntimeError with the tail of its log when it exits or is not healthy within ``timeout``.
    """
    import httpx

    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    argv = [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
            "127.0.0.1", "--port", str(port), "--no-ui"]
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=dict(env, PREFECT_HOME=str(home)), cwd=ROOT,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prefect server exited {process.returncode} before it was "
                                   f"ready:\n{log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"prefect server not healthy after {timeout:g} s:\n"
                                   f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield PrefectServer(process, api_url, home, time.perf_counter() - started)
    finally:
        _stop_group(process)


def _interrupted(signum: int, frame: Any) -> None:
    """SIGTERM as Ctrl-C: the bench writes its partial results and stops what it started."""
    raise KeyboardInterrupt(f"signal {signum}")


# --- the sandbox and the runs ----------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    runs: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    prefect_modes: tuple[str, ...] = ("long-lived",)  # the flow's, from --prefect
    prefect_server: PrefectServer | None = None  # with --prefect long-lived, once started
    _flow_warm: set[str] = field(default_factory=set)
    _counter: int = 0

    def base_env(self) -> dict[str, str]:
        """This environment without settings of ours, Prefect's API, dlt's; a Prefect home of
        the bench's own."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PREFECT_API_", "ANALYTICS_", "DESTINATION__", "RUNTIME__"))}
        env.update({
            "PREFECT_HOME": str(self.workdir / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def env(self, sandbox: Any, prefect: str | None = None) -> dict[str, str]:
        """A target's environment: the sandbox's secrets; for the flow, Prefect's API as
        ``prefect`` (a mode of ``PREFECT_MODES``) says."""
        env = self.base_env()
        env.update({
            "ANALYTICS_API_KEY": sandbox.api_key,
            "ANALYTICS_ORGANIZATION_ID": sandbox.organization_id,
            "ANALYTICS_SYNC_LOCK_DIR": str(self.workdir / "locks"),
        })
        if prefect == "long-lived":
            if self.prefect_server is None:
                raise RuntimeError("the long-lived Prefect server is not running")
            env["PREFECT_API_URL"] = self.prefect_server.api_url
            env["PREFECT_HOME"] = str(self.prefect_server.home)
        return env

    def argv(self, target: str, base_url: str, lake: Path, pipeline: str) -> list[str]:
        py = sys.executable
        if target == "raw":
            return [py, str(BENCH / "targets" / "raw.py"), "--base-url", base_url,
                    "--page-size", str(PAGE_SIZE)]
        if target == "library":
            return [py, str(BENCH / "targets" / "library.py"), "--base-url", base_url,
                    "--lake", str(lake), "--pipeline", pipeline]
        if target == "flow":
            return [py, str(ROOT / "flows" / "main.py"), "--base-url", base_url,
                    "--lake", str(lake), "--pipeline", pipeline, "--api-key-block", "",
                    "--organization-block", ""]
        if target == "dlt":
            return [py, str(BENCH / "targets" / "dlt_delta.py"), "--base-url", base_url,
                    "--lake", str(lake), "--pipeline", pipeline.replace("-", "_")]
        raise ValueError(target)

    def warm_flow(self, sandbox: Any, prefect: str) -> None:
        """One untimed flow run per mode (tags only): the Prefect database is created
        (migrations: ~15 s with the temporary server), so timed runs show the usual start-up."""
        if prefect in self._flow_warm:
            return
        lake = self.workdir / f"warmup-lake-{prefect}"
        argv = self.argv("flow", sandbox.base_url, lake, f"bench-warmup-{prefect}") + [
            "--resources", "tags"]
        measured = measure(argv, self.env(sandbox, prefect), ROOT,
                           self.workdir / f"warmup-flow-{prefect}", self.args.timeout)
        self.meta.setdefault("flow_first_start_seconds", round(measured.wall_seconds, 2))
        self.meta.setdefault("flow_warmup_seconds", {})[prefect] = round(measured.wall_seconds, 2)
        print(f"  first flow run ({prefect} Prefect server, tags only): "
              f"{measured.wall_seconds:.1f} s", flush=True)
        if measured.returncode != 0:
            print(measured.stderr_tail, file=sys.stderr)
        shutil.rmtree(lake, ignore_errors=True)
        self._flow_warm.add(prefect)

    def run_one(self, sandbox: Any, scenario: Scenario, target: str, rep: int, *,
                phase: str = "full", lake: Path | None = None,
                pipeline: str | None = None, prefect: str | None = None) -> dict[str, Any]:
        """One timed run; ``prefect``: the flow's mode (``PREFECT_MODES``), None for others."""
        self._counter += 1
        run_dir = self.workdir / f"run-{self._counter:03d}-{scenario.name}-{target}-{phase}"
        run_dir.mkdir(parents=True, exist_ok=True)
        own_lake = lake is None
        lake = lake or run_dir / "lake"
        pipeline = pipeline or f"bench-{self._counter:03d}"
        server = self.prefect_server if prefect == "long-lived" else None
        argv = self.argv(target, sandbox.base_url, lake, pipeline)
        if target == "dlt" and scenario.dlt_max_table_nesting is not None:
            argv += ["--max-table-nesting", str(scenario.dlt_max_table_nesting)]
        sandbox_admin(sandbox, "DELETE", "stats")
        measured = measure(argv, self.env(sandbox, prefect), ROOT, run_dir / "log",
                           self.args.timeout,
                           sandbox_pid=sandbox.process.pid if sandbox.process else None,
                           server_pid=server.process.pid if server else None)
        stats = sandbox.stats()
        report = last_json(measured.stdout)
        statuses: dict[str, int] = {}
        for by_status in stats["requests"].values():
            for status, n in by_status.items():
                statuses[status] = statuses.get(status, 0) + n
        record: dict[str, Any] = {
            "scale": self.args.scale, "scenario": scenario.name, "target": target,
            "phase": phase, "rep": rep, "ok": measured.returncode == 0,
            "returncode": measured.returncode,
            "wall_seconds": round(measured.wall_seconds, 3),
            "work_seconds": round(report["sync_seconds"], 3) if "sync_seconds" in report else None,
            "work_cpu_seconds": (round(report["sync_cpu_seconds"], 3)
                                 if "sync_cpu_seconds" in report else None),
            "peak_rss_mib": round(measured.peak_rss_bytes / MIB, 1),
            "main_peak_rss_mib": round(measured.main_peak_rss_bytes / MIB, 1),
            "sampled_tree_rss_mib": round(measured.sampled_peak_bytes / MIB, 1),
            "cpu_seconds": round(measured.cpu_seconds, 2),
            # other processes on the machine (not the sandbox, not this harness): cores busy
            "other_load": round(measured.other_cpu_seconds / measured.wall_seconds, 2),
            "requests": stats["total_requests"],
            "rate_limited": stats["rate_limited"],
            "server_errors": sum(n for s, n in statuses.items() if s.startswith("5")),
            "resets": stats.get("resets", 0),
            "ok_requests": statuses.get("200", 0),
            # when requests reached the sandbox (None from a sandbox before it said so)
            "first_request_at": stats.get("first_request_at"),
            "last_request_at": stats.get("last_request_at"),
            "request_span_seconds": (round(stats["request_span_seconds"], 3)
                                     if stats.get("request_span_seconds") is not None else None),
        }
        if target == "flow":
            record["prefect"] = prefect
        if server is not None:
            record["prefect_server_cpu_seconds"] = round(measured.server_cpu_seconds or 0.0, 2)
            record["prefect_server_rss_mib"] = round(tree_rss(server.process.pid) / MIB, 1)
        if target == "dlt" and scenario.dlt_max_table_nesting is not None:
            record["dlt_max_table_nesting"] = scenario.dlt_max_table_nesting
        if target == "raw":
            record["rows"] = report.get("rows_fetched")
        elif phase == "incremental":
            totals = report if target == "library" else flow_totals(measured.stdout +
                                                                    measured.stderr_tail)
            record["rows"] = (totals["inserted"] + totals["updated"]) if totals else None
        else:
            tables = Path(report["tables_dir"]) if target == "dlt" and "tables_dir" in report \
                else lake / "analytics" if target == "dlt" else lake
            try:
                record["rows"] = lake_rows(tables)
            except Exception as exc:  # a broken table is a result, not a crash of the bench
                record["rows"] = None
                record["rows_error"] = str(exc)[:300]
        if not record["ok"]:
            record["error"] = measured.stderr_tail[-1500:]
            print(f"    FAILED ({measured.returncode}); see {run_dir}\n"
                  f"{measured.stderr_tail[-1500:]}", file=sys.stderr, flush=True)
        self.runs.append(record)
        print(f"    {scenario.name:<15} {label(record):<8} {phase:<11} rep {rep}: "
              f"{record['wall_seconds']:7.2f} s  {record['peak_rss_mib']:7.1f} MiB  "
              f"{record['requests']:>7,} req  {record['rate_limited']:>5,} x429  "
              f"rows {record['rows']}", flush=True)
        if own_lake and not self.args.keep:
            shutil.rmtree(lake, ignore_errors=True)
        return record


def sandbox_admin(sandbox: Any, method: str, route: str) -> Any:
    import httpx

    response = httpx.request(method, f"{sandbox.base_url}/_admin/{route}", timeout=30)
    response.raise_for_status()
    return response.json()


def warm_sandbox(sandbox: Any, resource: str) -> None:
    """Have the sandbox serialize every record of ``resource`` (cached), without parsing here."""
    import httpx

    httpx.get(f"{sandbox.base_url}/_admin/truth/{resource}", timeout=120).raise_for_status()


def run_scenario(bench: Bench, scenario: Scenario, targets: list[str]) -> None:
    from analytics_sandbox import serve_subprocess

    args = bench.args
    if scenario.incremental:
        targets = [t for t in targets if t in INCREMENTAL_TARGETS]
    if not targets:
        print(f"scenario {scenario.name}: no selected target applies; skipped", flush=True)
        return
    print(f"scenario {scenario.name} (scale {args.scale:g}): {scenario.description}", flush=True)
    options = scenario.sandbox_options()
    with serve_subprocess(scale=args.scale, late_visibility=False, fault_seed=args.seed,
                          **options, **scenario.world_options()) as sandbox:
        for resource in RESOURCES:  # serialize every record once, outside any measured run
            warm_sandbox(sandbox, resource)
        # the flow once per Prefect mode asked for, every other target once
        runs = [(t, mode) for t in targets
                for mode in (bench.prefect_modes if t == "flow" else (None,))]
        if "flow" in targets:
            sandbox.configure(latency_ms=0, rate_limit=0, fault_rate=0, reset_rate=0)
            for warm in bench.prefect_modes:
                bench.warm_flow(sandbox, warm)
            sandbox.configure(**options)
        counts = sandbox_admin(sandbox, "GET", "health")["counts"]
        for rep in range(1, args.repeat + 1):
            for target, mode in runs:
                if not scenario.incremental:
                    bench.run_one(sandbox, scenario, target, rep, prefect=mode)
                    continue
                # a full run (timed too: the ratio's denominator), 1% changed, then incremental
                name = f"{target}-{mode}" if mode else target
                pipeline = f"bench-inc-{name}-{rep}"
                lake = bench.workdir / f"inc-lake-{name}-{rep}"
                bench.run_one(sandbox, scenario, target, rep, phase="full", lake=lake,
                              pipeline=pipeline, prefect=mode)
                updates = {r: max(1, round(counts[r] * scenario.changed_share)) for r in RESOURCES}
                sandbox.advance(updates=updates, seed=rep)
                bench.run_one(sandbox, scenario, target, rep, phase="incremental", lake=lake,
                              pipeline=pipeline, prefect=mode)
                shutil.rmtree(lake, ignore_errors=True)


# --- summarising --------------------------------------------------------------------------


def prefect_mode(run: dict[str, Any]) -> str | None:
    """The flow's Prefect mode; runs recorded before ``--prefect`` existed used the temporary
    server. None for targets other than the flow."""
    return (run.get("prefect") or "temporary") if run["target"] == "flow" else None


def label(run: dict[str, Any]) -> str:
    """A run's or summary row's target as the report names it: the flow with its Prefect mode,
    dlt with a ``max_table_nesting`` of the bench's."""
    mode = prefect_mode(run)
    if mode:
        return f"flow ({mode} Prefect)"
    if run.get("dlt_max_table_nesting") is not None:
        return f"dlt (max_table_nesting {run['dlt_max_table_nesting']})"
    return str(run["target"])


def group_key(run: dict[str, Any]) -> tuple[Any, ...]:
    """What makes runs comparable: their medians are taken together."""
    return (run["scale"], run["scenario"], run["target"], run["phase"], prefect_mode(run))


def _clean(run: dict[str, Any], max_other_load: float) -> bool | None:
    load = run.get("other_load")
    return None if load is None else load <= max_other_load


def select_runs(runs: list[dict[str, Any]], max_other_load: float | None) -> list[dict[str, Any]]:
    """Prefer undisturbed runs: per group, drop runs measured while other processes kept more
    than ``max_other_load`` cores busy (or not measured), when the group has undisturbed ones.

    Also forgets the peak RSS of runs recorded before the harness read VmHWM (their figure
    could be the harness's own RSS at launch, which Linux's wait4 ``ru_maxrss`` carries over).
    """
    out = []
    for run in runs:
        run = dict(run)
        if "sampled_tree_rss_mib" not in run and run.get("peak_rss_mib") == run.get(
                "main_peak_rss_mib"):
            run["peak_rss_mib"] = None
        out.append(run)
    if max_other_load is None:
        return out
    clean_groups = {group_key(r) for r in out if _clean(r, max_other_load)}
    return [r for r in out if _clean(r, max_other_load) or group_key(r) not in clean_groups]


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    rows = []
    for (scale, scenario, target, phase, mode), items in groups.items():
        def median(key: str, items: list[dict[str, Any]] = items) -> float | None:
            values = [r[key] for r in items if r.get(key) is not None]
            return statistics.median(values) if values else None
        rows.append({
            "scale": scale, "scenario": scenario, "target": target, "phase": phase,
            "runs": len(items), "failed": sum(not r["ok"] for r in items),
            "wall_seconds": median("wall_seconds"),
            "wall_min": min(r["wall_seconds"] for r in items),
            "wall_max": max(r["wall_seconds"] for r in items),
            "work_seconds": median("work_seconds"),
            "cpu_seconds": median("cpu_seconds"),
            "work_cpu_seconds": median("work_cpu_seconds"),
            "other_load": median("other_load"),
            "peak_rss_mib": median("peak_rss_mib"),
            "main_peak_rss_mib": median("main_peak_rss_mib"),
            "requests": median("requests"), "rate_limited": median("rate_limited"),
            "server_errors": median("server_errors"), "resets": median("resets"),
            "ok_requests": median("ok_requests"), "rows": median("rows"),
            "request_span_seconds": median("request_span_seconds"),
            "prefect_server_cpu_seconds": median("prefect_server_cpu_seconds"),
            "commit": ",".join(sorted({str(r.get("commit")) for r in items
                                       if r.get("commit")})) or None,
        })
        if mode:
            rows[-1]["prefect"] = mode
        nesting = sorted({int(r["dlt_max_table_nesting"]) for r in items
                          if r.get("dlt_max_table_nesting") is not None})
        if nesting:
            rows[-1]["dlt_max_table_nesting"] = ",".join(str(n) for n in nesting)
    order = {name: i for i, name in enumerate([*PRESETS, "custom"])}
    rows.sort(key=lambda r: (r["scale"], order.get(r["scenario"], 99), r["scenario"],
                             r["phase"] != "full", TARGETS.index(r["target"]),
                             PREFECT_MODES.index(r.get("prefect") or PREFECT_MODES[0])))
    return rows


def _find(summary: list[dict[str, Any]], scale: float, scenario: str, target: str,
          phase: str = "full", prefect: str | None = None) -> dict[str, Any] | None:
    """The summary row asked for, when some of its runs succeeded. For the flow, ``prefect``
    names the mode; without it the first measured in ``PREFECT_MODES``' order."""
    for row in summary:
        if (row["scale"] == scale and row["scenario"] == scenario and row["target"] == target
                and row["phase"] == phase and row["failed"] < row["runs"]
                and (prefect is None or prefect_mode(row) == prefect)):
            return row
    return None


def prefect_fixed_starts(summary: list[dict[str, Any]]
                         ) -> list[tuple[float, str, float, float]]:
    """(scale, mode, flow s, library s) of every full load measured for both, per mode."""
    out = []
    for scale in sorted({r["scale"] for r in summary}):
        lib = _find(summary, scale, "full", "library")
        if lib is None:
            continue
        for flow in _flows(summary, scale, "full"):
            out.append((scale, str(prefect_mode(flow)), flow["wall_seconds"],
                        lib["wall_seconds"]))
    return out


def _ours(summary: list[dict[str, Any]], scale: float, scenario: str,
          phase: str = "full") -> list[dict[str, Any]]:
    """Our targets measured here: the library, then the flow in each Prefect mode measured."""
    rows = [_find(summary, scale, scenario, "library", phase)]
    rows += [_find(summary, scale, scenario, "flow", phase, mode) for mode in PREFECT_MODES]
    return [row for row in rows if row is not None]


def _flows(summary: list[dict[str, Any]], scale: float, scenario: str,
           phase: str = "full") -> list[dict[str, Any]]:
    return [row for row in _ours(summary, scale, scenario, phase) if row["target"] == "flow"]


def ratios(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["scale"], r["scenario"]) for r in summary}, key=lambda k: (k[0], k[1]))
    for scale, scenario in keys:
        raw, dlt = _find(summary, scale, scenario, "raw"), _find(summary, scale, scenario, "dlt")
        for mine in _ours(summary, scale, scenario):
            for name, base in (("raw", raw), ("dlt", dlt)):
                if base is not None and base["wall_seconds"]:
                    out.append({"scale": scale, "scenario": scenario, "ours": label(mine),
                                "vs": name,
                                "wall_ratio": mine["wall_seconds"] / base["wall_seconds"],
                                "rss_ratio": (mine["peak_rss_mib"] / base["peak_rss_mib"]
                                              if mine["peak_rss_mib"] and base["peak_rss_mib"]
                                              else None)})
    return out


def _rate(row: dict[str, Any], limit: float) -> tuple[float, float]:
    """Successful requests per second of wall time, and that as a share of the limit."""
    rate = row["ok_requests"] / row["wall_seconds"]
    return rate, rate / limit


def api_rate(row: dict[str, Any], limit: float) -> tuple[float, float] | None:
    """The API's view: successful requests per second from the first request's arrival to the
    last's, and the share of the allowance they used over that span (``limit`` x (span +
    ``BURST_SECONDS``): the bucket starts full). None for runs recorded without the span."""
    span = row.get("request_span_seconds")
    if not span:
        return None
    return row["ok_requests"] / span, row["ok_requests"] / (limit * (span + BURST_SECONDS))


def rate_share(row: dict[str, Any], limit: float) -> tuple[float, str]:
    """The share of the allowed rate a run used, as its target is judged, and the figures.

    Judged on the API's view (``api_rate``), which leaves out what happens before the first
    request (imports; for the flow, Prefect's start) and after the last (the final commits);
    the whole process's wall-time figure is given beside it. Runs recorded before the sandbox
    reported when requests came are judged on their wall time, and the text says so.
    """
    rate, share = _rate(row, limit)
    whole = (f"whole process {rate:.1f} req/s = {share:.1%} of {limit:g} over "
             f"{row['wall_seconds']:.1f} s wall")
    api = api_rate(row, limit)
    if api is None:
        return share, f"judged on the {whole} (no request span recorded)"
    span_rate, span_share = api
    return span_share, (
        f"judged on the API's view: {row['ok_requests']:,.0f} ok requests in "
        f"{row['request_span_seconds']:.1f} s from first to last request = {span_rate:.1f} "
        f"req/s, {span_share:.1%} of the allowance {limit:g} x (span + {BURST_SECONDS:g} s "
        f"burst); {whole}")


def _ours_measured(summary: list[dict[str, Any]], scenario: str
                   ) -> list[tuple[str, int, dict[str, Any]]]:
    """(name, scale, row) of our targets measured in ``scenario``, at 1x then 10x."""
    return [(label(mine), scale, mine) for scale in (1, 10)
            for mine in _ours(summary, scale, scenario)]


def evaluate(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each met / not met / not measured, with the figures behind it."""
    targets: list[dict[str, Any]] = []

    def add(name: str, met: bool | None, detail: str, *rows: dict[str, Any] | None) -> None:
        codes = [str(r["commit"]) for r in rows if r and r.get("commit")]
        if len(set(codes)) > 1:  # figures measured on different versions of our code
            detail += f" [code {' vs '.join(codes)}]"
        targets.append({"target": name, "met": met, "detail": detail})

    scales = sorted({r["scale"] for r in summary}) or [1, 10]
    for scale in scales:
        lib, raw = _find(summary, scale, "full", "library"), _find(summary, scale, "full", "raw")
        if lib and raw:
            r = lib["wall_seconds"] / raw["wall_seconds"]
            add(f"full load {scale:g}x: library sync <= 1.3x raw", r <= 1.3,
                f"{lib['wall_seconds']:.2f} s / {raw['wall_seconds']:.2f} s = {r:.2f}x", lib, raw)
        else:
            add(f"full load {scale:g}x: library sync <= 1.3x raw", None, "not measured")
    dlt = _find(summary, 10, "full", "dlt")
    for flow in _flows(summary, 10, "full"):
        if dlt is None:
            break
        r = flow["wall_seconds"] / dlt["wall_seconds"]
        add(f"full load 10x: whole {label(flow)} <= 0.6x dlt's whole process", r <= 0.6,
            f"{flow['wall_seconds']:.2f} s / {dlt['wall_seconds']:.2f} s = {r:.2f}x", flow, dlt)
    if not any(t["target"].startswith("full load 10x: whole") for t in targets):
        add("full load 10x: whole flow <= 0.6x dlt's whole process", None, "not measured")
    dlt = _find(summary, 1, "latency50", "dlt")
    for mine in _ours(summary, 1, "latency50"):
        if dlt is None:
            break
        r = dlt["wall_seconds"] / mine["wall_seconds"]
        add(f"50 ms latency 1x: {label(mine)} >= 6x faster than dlt", r >= 6,
            f"dlt {dlt['wall_seconds']:.2f} s / {label(mine)} {mine['wall_seconds']:.2f} s "
            f"= {r:.2f}x faster", mine, dlt)
    if not any(t["target"].startswith("50 ms latency 1x") for t in targets):
        add("50 ms latency 1x: ours >= 6x faster than dlt", None, "not measured")
    for ours, scale, mine in _ours_measured(summary, "rate50"):
        share, detail = rate_share(mine, 50)
        x429 = mine["rate_limited"] / mine["requests"] if mine["requests"] else 0
        add(f"rate limit 50 req/s {scale}x: {ours} >= 95% of allowed rate, 429s < 1%",
            share >= 0.95 and x429 < 0.01,
            f"{detail}; {mine['rate_limited']:.0f} 429s = {x429:.2%} of "
            f"{mine['requests']:.0f} requests")
        if mine.get("work_seconds"):
            busy = mine["ok_requests"] / mine["work_seconds"]
            add(f"rate limit 50 req/s {scale}x: {ours} >= 95% of allowed rate while syncing "
                "(after imports), 429s < 1%", busy / 50 >= 0.95 and x429 < 0.01,
                f"{busy:.1f} req/s = {busy / 50:.1%} of 50 over "
                f"{mine['work_seconds']:.1f} s in-process")
    if not any(t["target"].startswith("rate limit 50") for t in targets):
        add("rate limit 50 req/s: ours >= 95% of allowed rate, 429s < 1%", None, "not measured")
    for ours, scale, mine in _ours_measured(summary, "rate200-faults"):
        share, detail = rate_share(mine, 200)
        add(f"200 req/s, 0.5% 5xx, 0.5% resets {scale}x: {ours} >= 85% of allowed rate",
            share >= 0.85, detail + (
                f"; {mine['ok_requests'] / mine['work_seconds']:.1f} req/s = "
                f"{mine['ok_requests'] / mine['work_seconds'] / 200:.1%} in-process"
                if mine.get("work_seconds") else ""))
        dlt = _find(summary, scale, "rate200-faults", "dlt")
        if dlt:
            r = dlt["wall_seconds"] / mine["wall_seconds"]
            add(f"200 req/s, 0.5% 5xx, 0.5% resets {scale}x: {ours} >= 4x faster than dlt",
                r >= 4, f"dlt {dlt['wall_seconds']:.2f} s / {ours} "
                f"{mine['wall_seconds']:.2f} s = {r:.2f}x faster", mine, dlt)
    if not any(t["target"].startswith("200 req/s") for t in targets):
        add("200 req/s, 0.5% 5xx, 0.5% resets: >= 85% of allowed rate, >= 4x faster than dlt",
            None, "not measured")
    # peak RSS 10x / 1x: in evaluate_issue15, at every pair of scales measured
    dlt = _find(summary, 10, "full", "dlt")
    for flow in _flows(summary, 10, "full"):
        if not flow["peak_rss_mib"]:
            continue
        detail = f"flow tree {flow['peak_rss_mib']:.0f} MiB"
        if prefect_mode(flow) == "long-lived":
            detail += " (the long-lived server is not in it)"
        if dlt and dlt["peak_rss_mib"]:
            detail += f"; dlt measured here {dlt['peak_rss_mib']:.0f} MiB"
        add(f"{label(flow)} process tree at 10x below dlt's 450 MiB",
            flow["peak_rss_mib"] < 450, detail)
    if not any("process tree at 10x" in t["target"] for t in targets):
        add("flow process tree at 10x below dlt's 450 MiB", None, "not measured")
    inc = _find(summary, 10, "incremental", "library", "incremental")
    full = _find(summary, 10, "incremental", "library", "full") or \
        _find(summary, 10, "full", "library")
    if inc and full:
        r = inc["wall_seconds"] / full["wall_seconds"]
        detail = (f"{inc['wall_seconds']:.2f} s / {full['wall_seconds']:.2f} s = {r:.1%} "
                  f"(wall, process start included)")
        if inc.get("work_seconds") and full.get("work_seconds"):
            detail += (f"; in-process {inc['work_seconds']:.2f} s / "
                       f"{full['work_seconds']:.2f} s = "
                       f"{inc['work_seconds'] / full['work_seconds']:.1%}")
        add("incremental library run after 1% changed at 10x <= 5% of a full run", r <= 0.05,
            detail, inc, full)
    else:
        add("incremental library run after 1% changed at 10x <= 5% of a full run", None,
            "not measured")
    same = _find(summary, 1, "incremental10", "library", "incremental")
    name = ("incremental library run after 1% changed at 10x <= 2x the same number of changes "
            "at 1x (10% changed)")
    if inc and same:
        r = inc["wall_seconds"] / same["wall_seconds"]
        add(name, r <= 2, f"{inc['wall_seconds']:.2f} s / {same['wall_seconds']:.2f} s = "
            f"{r:.2f}x (wall)", inc, same)
    else:
        add(name, None, "not measured")
    targets += evaluate_issue15(summary, scales)
    return targets


def in_flight_limit() -> int:
    """``client.max_concurrency`` of the configuration every target of ours runs with."""
    from analytics_client.config.model import ClientConfig

    return int(ClientConfig.model_fields["max_concurrency"].default)


def cpu_per_10k(row: dict[str, Any] | None) -> float | None:
    """CPU seconds per 10,000 records: in-process CPU during the sync (imports excluded) when
    the target reports it, else the whole tree's."""
    if not row or not row.get("rows"):
        return None
    cpu = row.get("work_cpu_seconds") or row.get("cpu_seconds")
    return None if cpu is None else cpu / row["rows"] * 10_000


def evaluate_issue15(summary: list[dict[str, Any]], scales: list[float]) -> list[dict[str, Any]]:
    """Issue 15's targets: latency floors, the rate limit, CPU per record, memory."""
    out: list[dict[str, Any]] = []

    def add(name: str, met: bool | str | None, detail: str) -> None:
        out.append({"target": name, "met": met, "detail": detail})

    limit = in_flight_limit()
    for ms in (50, 200):
        scenario, measured = f"latency{ms}", False
        for scale in scales:
            lib = _find(summary, scale, scenario, "library")
            if lib is None:
                continue
            measured = True
            floor = lib["requests"] * ms / 1000 / limit
            r = lib["wall_seconds"] / floor
            detail = (f"{lib['wall_seconds']:.2f} s / floor {floor:.2f} s ({lib['requests']:,.0f} "
                      f"requests x {ms} ms / {limit}) = {r:.2f}x")
            if lib.get("work_seconds"):
                detail += f"; in-process {lib['work_seconds'] / floor:.2f}x"
            dlt = _find(summary, scale, scenario, "dlt")
            if dlt:
                detail += f"; dlt {dlt['wall_seconds']:.2f} s"
            add(f"{ms} ms latency {scale:g}x: library <= 1.3x the floor", r <= 1.3, detail)
            lib_full = _find(summary, scale, "full", "library")
            flows = _flows(summary, scale, scenario)
            for flow in flows:
                # Prefect's fixed start from the flow's full load in the same mode only: a
                # temporary server's ~40 s is no part of a run against a long-lived one.
                mode = prefect_mode(flow)
                flow_full = _find(summary, scale, "full", "flow", prefect=mode)
                name = (f"{ms} ms latency {scale:g}x: {label(flow)} <= 1.3x (library + "
                        "Prefect's fixed start)")
                if flow_full and lib_full:
                    fixed = max(0.0, flow_full["wall_seconds"] - lib_full["wall_seconds"])
                    bound = lib["wall_seconds"] + fixed
                    r = flow["wall_seconds"] / bound
                    add(name, r <= 1.3, f"{flow['wall_seconds']:.2f} s / "
                        f"({lib['wall_seconds']:.2f} s + {fixed:.2f} s fixed: flow ({mode} "
                        f"Prefect) minus library, full load, same scale) = {r:.2f}x")
                else:
                    add(name, None, f"not measured (needs the flow ({mode} Prefect) and the "
                        "library in full at this scale)")
            if not flows:
                add(f"{ms} ms latency {scale:g}x: flow <= 1.3x (library + Prefect's fixed "
                    "start)", None, "not measured")
        if not measured:
            add(f"{ms} ms latency: library <= 1.3x the floor", None, "not measured")
    measured = False
    for scale in scales:
        for mine in _ours(summary, scale, "rate200-faults"):
            want = 0.90 if mine["target"] == "library" else 0.85
            measured = True
            share, detail = rate_share(mine, 200)
            x429 = mine["rate_limited"] / mine["requests"] if mine["requests"] else 0
            detail += (f"; {mine['rate_limited']:.0f} 429s = {x429:.2%} of "
                       f"{mine['requests']:.0f} requests")
            if mine.get("work_seconds"):
                detail += (f"; in-process {mine['ok_requests'] / mine['work_seconds'] / 200:.1%}")
            add(f"200 req/s, 0.5% 5xx, 0.5% resets {scale:g}x: {label(mine)} >= {want:.0%} of "
                "the allowed rate, 429s < 1%", share >= want and x429 < 0.01, detail)
    if not measured:
        add("200 req/s, 0.5% 5xx, 0.5% resets: library >= 90%, flow >= 85% of the allowed "
            "rate, 429s < 1%", None, "not measured")
    measured = False
    for scale in scales:
        for scenario, judged in (("full", True), ("rich", False)):
            raw_cpu, lib_cpu, dlt_cpu = (cpu_per_10k(_find(summary, scale, scenario, t))
                                         for t in ("raw", "library", "dlt"))
            if raw_cpu is None or lib_cpu is None:
                continue
            measured = True
            detail = (f"CPU s per 10,000 records: raw {raw_cpu:.2f}, library {lib_cpu:.2f}, dlt "
                      + (f"{dlt_cpu:.2f}" if dlt_cpu is not None else "not measured")
                      + f"; library / raw = {lib_cpu / raw_cpu:.2f}x")
            nesting = (_find(summary, scale, scenario, "dlt") or {}).get("dlt_max_table_nesting")
            if dlt_cpu is not None and nesting is not None:
                detail += f" (dlt with max_table_nesting {nesting})"
            profile = "default" if scenario == "full" else "rich"
            add(f"CPU per record {scale:g}x, {profile} profile: library <= 1.3x raw"
                if judged else f"CPU per record {scale:g}x, rich profile: ratio reported",
                lib_cpu / raw_cpu <= 1.3 if judged else "reported", detail)
    if not measured:
        add("CPU per record: library <= 1.3x raw", None, "not measured")
    pairs = [(a, b) for a in scales for b in scales if abs(b - 10 * a) < 1e-9]
    for small, large in pairs or [(1, 10)]:
        one = _find(summary, small, "full", "library")
        ten = _find(summary, large, "full", "library")
        name = f"peak RSS of library sync at {large:g}x <= 1.2x its peak at {small:g}x"
        if one and ten and one["peak_rss_mib"] and ten["peak_rss_mib"]:
            r = ten["peak_rss_mib"] / one["peak_rss_mib"]
            add(name, r <= 1.2, f"{ten['peak_rss_mib']:.0f} MiB / {one['peak_rss_mib']:.0f} MiB "
                f"= {r:.2f}x")
        else:
            add(name, None, "not measured")
    large = max(scales)
    dlt_peak = (_find(summary, large, "full", "dlt") or {}).get("peak_rss_mib")
    flows = [f for f in _flows(summary, large, "full") if f.get("main_peak_rss_mib")]
    for flow in flows if dlt_peak else []:
        add(f"{label(flow)}: its own process at {large:g}x (no Prefect server) below dlt's peak",
            flow["main_peak_rss_mib"] < dlt_peak,
            f"flow process {flow['main_peak_rss_mib']:.0f} MiB (its tree "
            f"{flow['peak_rss_mib']:.0f} MiB); dlt {dlt_peak:.0f} MiB")
    if not (flows and dlt_peak):
        add(f"flow's own process at {large:g}x (no temporary server) below dlt's peak", None,
            "not measured")
    return out


# --- reporting ----------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def render(results: list[dict[str, Any]], max_other_load: float | None = None) -> str:
    """The markdown report of one or more result files (their runs merged)."""
    # The newest result file wins for each target and scenario: the code under test moves on.
    newest: dict[tuple[Any, ...], str] = {}
    every = []
    for result in sorted(results, key=lambda r: r["meta"]["started"]):
        commit = result["meta"].get("machine", {}).get("commit") or "?"
        for run in result["runs"]:
            newest[group_key(run)] = result["meta"]["started"]
            every.append({**run, "commit": commit, "started": result["meta"]["started"]})
    superseded = [r for r in every if newest[group_key(r)] != r["started"]]
    every = [r for r in every if r not in superseded]
    runs = select_runs(every, max_other_load)
    summary = summarise(runs)
    lines = ["# Benchmark results", ""]
    meta = results[-1]["meta"]
    lines += ["## Machine", ""]
    machine = meta["machine"]
    lines.append(f"- {machine['cpus']} CPUs ({machine['cpu_model']}), "
                 f"{machine['memory_gib']:.1f} GiB memory, {machine['system']}")
    lines.append(f"- Python {machine['python']}; "
                 + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()))
    lines.append(f"- sandbox: its own process, {machine['sandbox_http']} HTTP parser; "
                 f"page size {PAGE_SIZE} everywhere")
    if machine.get("commit"):
        dirty = machine.get("uncommitted") or []
        lines.append(f"- code: commit {machine['commit']}"
                     + (f" plus uncommitted changes to {len(dirty)} paths" if dirty else ""))
    lines += ["", "## Commands", ""]
    for result in results:
        m = result["meta"]
        lines.append(f"- `{m['command']}` ({m['started']}, {m['elapsed_seconds'] / 60:.1f} min; "
                     f"repeat {m['repeat']}; code "
                     f"{m.get('machine', {}).get('commit') or 'not recorded'})")
        if m.get("prefect"):
            server = (f"; the long-lived server healthy after "
                      f"{m['prefect_server_start_seconds']:.1f} s, outside the timed runs"
                      if m.get("prefect_server_start_seconds") is not None else "")
            lines.append(f"  - flow runs against Prefect: {', '.join(m['prefect'])}{server}")
        for note in m.get("notes", []):
            lines.append(f"  - {note}")
    if superseded:
        lines.append(f"- {len(superseded)} runs superseded by a later result file for the same "
                     "target and scenario (the newest measurement of each is reported)")
    if len(runs) < len(every):
        lines.append(f"- {len(every) - len(runs)} of {len(every)} runs left out of the medians: "
                     f"measured while other processes kept more than {max_other_load:g} cores "
                     "busy (or before the harness measured that), where undisturbed runs of the "
                     "same target and scenario exist")
    lines += ["", "## Results", "",
              "Medians over the runs; wall = launch to exit of the target's process; work = "
              "time inside it after imports (for the flow: not reported); RSS = peak of the "
              "whole process tree (a long-lived Prefect server is not in the flow's tree: its "
              "CPU during the run is given as + server); CPU = user + system time of that tree; "
              "req/s = 200 responses per second of wall time; API req/s = the same per second "
              "from the first request's arrival at the sandbox to the last's (the API's view, "
              "without start-up and final commits); other load = CPU cores kept busy meanwhile "
              "by processes other than the target, the sandbox, a long-lived Prefect server and "
              "the harness (on 2 cores, anything well above 0 means the figures are "
              "disturbed).", "",
              "| scale | scenario | target | runs | wall s (min-max) | work s | CPU s "
              "| peak RSS MiB | requests | 429s | 5xx | resets | rows | req/s | API req/s "
              "| other load | code |",
              "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
              "|---|"]
    for r in summary:
        two_phases = PRESETS.get(r["scenario"], PRESETS["full"]).incremental
        name = f"{label(r)} ({r['phase']})" if two_phases else label(r)
        runs_cell = f"{r['runs']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
        rate = r["ok_requests"] / r["wall_seconds"] if r["wall_seconds"] else None
        span = r.get("request_span_seconds")
        api = r["ok_requests"] / span if span else None
        cpu = _fmt(r.get("cpu_seconds"), ".1f")
        if r.get("prefect_server_cpu_seconds") is not None:
            cpu += f" (+ server {r['prefect_server_cpu_seconds']:.1f})"
        lines.append(
            f"| {r['scale']:g}x | {r['scenario']} | {name} | {runs_cell} | "
            f"{_fmt(r['wall_seconds'], '.2f')} ({r['wall_min']:.2f}-{r['wall_max']:.2f}) | "
            f"{_fmt(r['work_seconds'], '.2f')} | {cpu} | "
            f"{_fmt(r['peak_rss_mib'], '.0f')} | "
            f"{_fmt(r['requests'])} | {_fmt(r['rate_limited'])} | {_fmt(r['server_errors'])} | "
            f"{_fmt(r['resets'])} | {_fmt(r['rows'])} | {_fmt(rate, '.0f')} | "
            f"{_fmt(api, '.0f')} | "
            f"{_fmt(r.get('other_load'), '.2f')} | {r.get('commit') or '-'} |")
    fixed = prefect_fixed_starts(summary)
    if fixed:
        lines += ["", "## Prefect's fixed start", "",
                  "The flow's full load minus the library's (wall time, same scale), per way "
                  "the flow meets Prefect's API; the flow's latency targets add this to the "
                  "library's time, from runs of the same mode only.", "",
                  "| scale | Prefect | flow s | library s | fixed start s |",
                  "|---:|---|---:|---:|---:|"]
        for scale, mode, flow_s, lib_s in fixed:
            lines.append(f"| {scale:g}x | {mode} | {flow_s:.2f} | {lib_s:.2f} | "
                         f"{max(0.0, flow_s - lib_s):.2f} |")
    ratio_rows = ratios(summary)
    if ratio_rows:
        lines += ["", "## Ratios (wall time; peak RSS)", "",
                  "| scale | scenario | ours | vs | wall ratio | RSS ratio |",
                  "|---:|---|---|---|---:|---:|"]
        for r in ratio_rows:
            lines.append(f"| {r['scale']:g}x | {r['scenario']} | {r['ours']} | {r['vs']} | "
                         f"{r['wall_ratio']:.2f} | {_fmt(r['rss_ratio'], '.2f')} |")
    lines += ["", "## Targets", "", "| target | status | figures |", "|---|---|---|"]
    for t in evaluate(summary):
        status = {True: "met", False: "**not met**",
                  None: "not measured"}.get(t["met"], t["met"])
        lines.append(f"| {t['target']} | {status} | {t['detail']} |")
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    from analytics_sandbox.server import default_http

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    packages = {name: version(name) for name in (
        "httpx", "stamina", "polars", "deltalake", "prefect", "uvicorn", "httptools", "dlt",
        "pyarrow")}
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT,
                                  capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model, "memory_gib": memory,
            "commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "uncommitted": changed,
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "packages": {k: v for k, v in packages.items() if v is not None},
            "sandbox_http": default_http()}


# --- command line -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Benchmark raw httpx, the library, the Prefect flow and dlt against the "
        "sandbox API (its own process), page size 10, median of --repeat runs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios: " + "; ".join(f"{s.name}: {s.description}"
                                          for s in PRESETS.values())
        + "; custom: the --latency-ms/--rate-limit/--fault-rate/--reset-rate given "
        "(selected alone when any of them is given without --scenarios)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="dataset size factor (1 = 27,250 records, 2,725 pages; 10 = 10x)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (median)")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated subset of {','.join(TARGETS)}")
    parser.add_argument("--scenarios", default=None,
                        help=f"comma-separated subset of {','.join(PRESETS)},custom "
                        "(default: all presets)")
    parser.add_argument("--latency-ms", type=float, default=None, help="custom scenario: latency")
    parser.add_argument("--rate-limit", type=float, default=None,
                        help="custom scenario: requests/s allowed")
    parser.add_argument("--fault-rate", type=float, default=None,
                        help="custom scenario: share of 5xx answers")
    parser.add_argument("--reset-rate", type=float, default=None,
                        help="custom scenario: share of connections dropped mid-body")
    parser.add_argument("--prefect", default="long-lived",
                        help="how the flow meets Prefect's API, comma-separated for both: "
                        "long-lived (default: one `prefect server start` on a free loopback "
                        "port for the whole invocation, started before the first flow run and "
                        "outside the timed runs, PREFECT_API_URL pointing at it, as a "
                        "deployment runs), temporary (no PREFECT_API_URL: each flow run starts "
                        "Prefect's temporary server)")
    parser.add_argument("--seed", type=int, default=0, help="the sandbox's fault seed")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report under this command (repeatable), e.g. "
                        "how busy the machine was")
    parser.add_argument("--out", default=str(BENCH / "results"),
                        help="directory for <timestamp>.json and <timestamp>.md")
    parser.add_argument("--results-md", default=None,
                        help="also write the markdown report here (e.g. bench/RESULTS.md)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--keep", action="store_true", help="keep every run's lake and logs")
    parser.add_argument("--report", nargs="+", metavar="JSON",
                        help="render the markdown report of these result files (merged) to "
                        "stdout, run nothing")
    parser.add_argument("--max-other-load", type=float, default=None,
                        help="with --report: leave out runs during which other processes kept "
                        "more than this many cores busy, where undisturbed runs of the same "
                        "target and scenario exist")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report:
        print(render([json.loads(Path(p).read_text()) for p in args.report],
                     args.max_other_load), end="")
        return 0
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        print(f"error: unknown targets {sorted(unknown)}; choose from {TARGETS}", file=sys.stderr)
        return 2
    custom_given = any(v is not None for v in (args.latency_ms, args.rate_limit, args.fault_rate,
                                               args.reset_rate))
    names = ([s.strip() for s in args.scenarios.split(",") if s.strip()] if args.scenarios
             else ["custom"] if custom_given else list(PRESETS))
    scenarios = []
    for name in names:
        if name == "custom":
            scenarios.append(Scenario(
                "custom", f"latency {args.latency_ms or 0:g} ms, rate limit "
                f"{args.rate_limit or 0:g} req/s, 5xx {args.fault_rate or 0:g}, resets "
                f"{args.reset_rate or 0:g}", latency_ms=args.latency_ms or 0,
                rate_limit=args.rate_limit or 0, fault_rate=args.fault_rate or 0,
                reset_rate=args.reset_rate or 0))
        elif name in PRESETS:
            scenarios.append(PRESETS[name])
        else:
            print(f"error: unknown scenario {name!r}; choose from {[*PRESETS, 'custom']}",
                  file=sys.stderr)
            return 2
    modes = tuple(dict.fromkeys(m.strip() for m in args.prefect.split(",") if m.strip()))
    if not modes or set(modes) - set(PREFECT_MODES):
        print(f"error: --prefect {args.prefect!r}: choose from {','.join(PREFECT_MODES)} "
              "(comma-separated for both)", file=sys.stderr)
        return 2
    notes = list(args.note)
    if "dlt" in targets and importlib.util.find_spec("dlt") is None:
        message = ("dlt skipped: it is not installed (it is in the optional `bench` dependency "
                   "group: `uv sync --group bench`, or run with `uv run --group bench ...`)")
        print(message, flush=True)
        notes.append(message)
        targets.remove("dlt")
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runner = "uv run --group bench " if importlib.util.find_spec("dlt") else "uv run "
    command = runner + "python " + " ".join(shlex.quote(a) for a in
                                   ([os.path.relpath(sys.argv[0], ROOT)] if argv is None
                                    else ["bench/run.py"]) + (sys.argv[1:] if argv is None
                                                              else argv))
    signal.signal(signal.SIGTERM, _interrupted)
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="analytics-bench-") as tmp, \
            contextlib.ExitStack() as services:
        bench = Bench(args, Path(tmp), prefect_modes=modes)
        bench.meta = {"command": command, "started": started.isoformat(timespec="seconds"),
                      "scale": args.scale, "repeat": args.repeat, "targets": targets,
                      "scenarios": [s.__dict__ for s in scenarios], "notes": notes,
                      "machine": machine()}
        if "flow" in targets:
            bench.meta["prefect"] = list(modes)
        try:
            if "flow" in targets and "long-lived" in modes:
                print("starting a long-lived Prefect server (outside the timed runs)",
                      flush=True)
                server = services.enter_context(prefect_server(
                    bench.base_env(), bench.workdir / "prefect-home-long-lived",
                    bench.workdir / "prefect-server.log"))
                bench.prefect_server = server
                bench.meta["prefect_server_start_seconds"] = round(server.start_seconds, 2)
                bench.meta["prefect_api_url"] = server.api_url
                print(f"  {server.api_url} healthy after {server.start_seconds:.1f} s",
                      flush=True)
            for scenario in scenarios:
                run_scenario(bench, scenario, targets)
        except KeyboardInterrupt:
            interrupted = True
            notes.append("interrupted: partial results")
            print("interrupted: writing partial results", file=sys.stderr)
        finally:
            bench.meta["elapsed_seconds"] = (dt.datetime.now(dt.UTC) - started).total_seconds()
            summary = summarise(bench.runs)
            result = {"meta": bench.meta, "runs": bench.runs, "summary": summary,
                      "ratios": ratios(summary), "targets": evaluate(summary)}
            json_path = out / f"{stamp}.json"
            json_path.write_text(json.dumps(result, indent=2) + "\n")
            markdown = render([result])
            (out / f"{stamp}.md").write_text(markdown)
            if args.results_md:
                Path(args.results_md).write_text(markdown)
            print("\n" + markdown)
            print(f"results: {json_path} and {json_path.with_suffix('.md')}", flush=True)
    if interrupted:
        return 128 + signal.SIGINT
    return 0 if all(r["ok"] for r in bench.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
