"""Requests of runs that find nothing new, against the sandbox's default world.

    uv run python bench/quiet_runs.py [soft|off]

A full read; 30 updates per resource (a bulk change stamps 25-30 of them alike, more than a
page); then the sandbox's clock moves on with nothing changed (``advance()`` twice), and three
quiet runs follow. Prints the requests of each run, per resource; the argument is the seed
config's ``delete_missing`` (default soft). The table of docs/incremental.md ("The API's
clock") comes from here.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics_client import DEFAULT_CONFIG  # noqa: E402
from analytics_client.state.marks import MemoryMarkStore  # noqa: E402
from analytics_sandbox import World, serve  # noqa: E402
from tests.support import assert_lake_equals_truth, sync  # noqa: E402


def main(deletes: str) -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["resource_defaults"]["delete_missing"] = deletes
    marks = MemoryMarkStore()
    with tempfile.TemporaryDirectory() as directory, serve(World(seed=0)) as sandbox:
        lake = Path(directory)

        def run(label: str) -> None:
            sandbox.app.reset_stats()
            summaries = sync(sandbox, lake, marks, config=config)
            requests = {r: sum(s.values()) for r, s in sandbox.app.stats()["requests"].items()}
            failed = [s.resource for s in summaries.values() if s.status != "ok"]
            print(f"{label}: {sum(requests.values()):,} requests "
                  f"{dict(sorted(requests.items()))}{f', failed {failed}' if failed else ''}")

        run("full read")
        sandbox.world.advance(updates=30, seed="quiet-runs")
        run("after 30 updates per resource")
        sandbox.world.advance()  # the clock moves on, nothing changes
        sandbox.world.advance()
        for n in range(1, 4):
            run(f"quiet run {n}")
        assert_lake_equals_truth(sandbox, lake)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "soft")
