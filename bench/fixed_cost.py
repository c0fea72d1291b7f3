"""Fixed cost of the CLI commands (README, "Fixed cost of a command"): before vs after, interleaved.

Usage: ``python bench/fixed_cost.py [N]``. "before" is a checkout of commit 2ffdf9b at
$BEFORE_CHECKOUT (``git archive 2ffdf9b | tar -x -C DIR``); both run with this interpreter, each
on its own PYTHONPATH, PREFECT_HOME and lake, without PREFECT_API_URL. Each command runs N times
per side, alternating sides so that a change in the machine's load hits both; the table gives the
median wall and CPU (user + system) seconds and the largest peak RSS (``/usr/bin/time -v``).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PY = sys.executable
CODES = {"before": os.environ.get("BEFORE_CHECKOUT", "/tmp/wt12a-orig"),
         "after": str(Path(__file__).resolve().parents[1])}
Result = tuple[int, float, float, int]  # exit status, wall s, CPU s, peak RSS MB


def _env(label: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PYTHONPATH=CODES[label], PREFECT_HOME=f"/tmp/fixed-cost-home-{label}",
               PREFECT_SERVER_ANALYTICS_ENABLED="false",
               ANALYTICS_SYNC_LOCK_DIR=f"/tmp/fixed-cost-locks-{label}")
    return env


def _lake(label: str) -> str:
    return f"/tmp/fixed-cost-lake-{label}"


def _timed(label: str, args: list[str]) -> Result:
    done = subprocess.run(["/usr/bin/time", "-v", PY, "flows/main.py", *args], cwd=CODES[label],
                          env=_env(label), capture_output=True, text=True, check=False)

    def field(name: str) -> str:
        found = re.search(re.escape(name) + r":\s*(\S+)", done.stderr)
        assert found is not None, done.stderr[-2000:]
        return found.group(1)

    minutes, seconds = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")[-2:]
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    rss = int(field("Maximum resident set size (kbytes)")) // 1024
    return done.returncode, int(minutes) * 60 + float(seconds), cpu, rss


COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "state show --sandbox": lambda l: ["state", "show", "--sandbox", "--lake", _lake(l)],
    "state reset deals --sandbox": lambda l: ["state", "reset", "deals", "--sandbox", "--lake",
                                              _lake(l)],
    "check --sandbox": lambda l: ["check", "--sandbox", "--lake", _lake(l)],
    # deals is left out: `state reset deals` above makes its next reads full ones.
    "no-op incremental run (--sandbox)": lambda l: ["--sandbox", "--lake", _lake(l),
                                                    "--resources", "tags,pages,tasks,users"],
}


def main(n: int) -> None:
    for label in CODES:
        shutil.rmtree(_env(label)["PREFECT_HOME"], ignore_errors=True)
        shutil.rmtree(_lake(label), ignore_errors=True)
        print(label, "setup full run", _timed(label, ["--sandbox", "--lake", _lake(label)]),
              flush=True)
    results: dict[tuple[str, str], list[Result]] = {}
    for i in range(n):
        for name, argv in COMMANDS.items():
            for label in CODES:
                result = _timed(label, argv(label))
                results.setdefault((name, label), []).append(result)
                print(i, name, label, result, os.getloadavg()[0], flush=True)
    print("\n| command | before: wall s / CPU s / peak RSS MB "
          "| after: wall s / CPU s / peak RSS MB |")
    print("|---|---|---|")
    for name in COMMANDS:
        cells = []
        for label in CODES:
            runs = results[(name, label)]
            cells.append(f"{statistics.median(r[1] for r in runs):.1f} / "
                         f"{statistics.median(r[2] for r in runs):.1f} / {max(r[3] for r in runs)}")
        print(f"| `{name}` | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
