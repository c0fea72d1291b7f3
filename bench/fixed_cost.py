"""Fixed cost of the CLI commands (README, "Fixed cost of a command"): before vs after, interleaved.

Usage: python bench/fixed_cost.py [N]. "before" is a checkout of commit 2ffdf9b at $BEFORE_CHECKOUT
(`git archive 2ffdf9b | tar -x -C DIR`); both run with this interpreter, each on its own PYTHONPATH.
"""
import os, re, shutil, statistics, subprocess, sys
from pathlib import Path

PY = sys.executable
CODES = {"before": os.environ.get("BEFORE_CHECKOUT", "/tmp/wt12a-orig"),
         "after": str(Path(__file__).resolve().parents[1])}
def env(label):
    e = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    e.update(PYTHONPATH=CODES[label], PREFECT_HOME=f"/tmp/fixed-cost-home-{label}",
             PREFECT_SERVER_ANALYTICS_ENABLED="false", ANALYTICS_SYNC_LOCK_DIR=f"/tmp/fixed-cost-locks-{label}")
    return e
def lake(label): return f"/tmp/fixed-cost-lake-{label}"
def timed(label, args):
    out = subprocess.run(["/usr/bin/time", "-v", PY, "flows/main.py", *args], cwd=CODES[label],
                         env=env(label), capture_output=True, text=True)
    t = out.stderr
    g = lambda k: re.search(k + r":\s*(\S+)", t).group(1)
    w = g(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\)")
    m, s = w.split(":")[-2:]
    wall = int(m) * 60 + float(s)
    cpu = float(g("User time \(seconds\)")) + float(g("System time \(seconds\)"))
    rss = int(g("Maximum resident set size \(kbytes\)")) // 1024
    return out.returncode, wall, cpu, rss
COMMANDS = {
    "state show --sandbox": lambda l: ["state", "show", "--sandbox", "--lake", lake(l)],
    "state reset deals --sandbox": lambda l: ["state", "reset", "deals", "--sandbox", "--lake", lake(l)],
    "check --sandbox": lambda l: ["check", "--sandbox", "--lake", lake(l)],
    "no-op incremental run (--sandbox)": lambda l: ["--sandbox", "--lake", lake(l), "--resources", "tags,pages,tasks,users"],
}
def main(n: int) -> None:
    for label in CODES:
        shutil.rmtree(env(label)["PREFECT_HOME"], ignore_errors=True); shutil.rmtree(lake(label), ignore_errors=True)
        print(label, "setup full run", timed(label, ["--sandbox", "--lake", lake(label)]), flush=True)
    results = {}
    for i in range(n):
        for name, argv in COMMANDS.items():
            for label in CODES:
                r = timed(label, argv(label))
                results.setdefault((name, label), []).append(r)
                print(i, name, label, r, open("/proc/loadavg").read().split()[0], flush=True)
    print("\n| command | before: wall s / CPU s / peak RSS MB | after: wall s / CPU s / peak RSS MB |")
    print("|---|---|---|")
    for name in COMMANDS:
        cells = []
        for label in CODES:
            rs = results[(name, label)]
            cells.append(f"{statistics.median(r[1] for r in rs):.1f} / {statistics.median(r[2] for r in rs):.1f} / {max(r[3] for r in rs)}")
        print(f"| `{name}` | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
