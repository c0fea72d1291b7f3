"""Request counts of a parent/child read (deals and their tasks) against the sandbox.

    uv run python bench/children_counts.py 1000

Prints, per run, the child endpoint's requests and all requests: the first run, a rerun with
nothing changed, and reruns after 1 and 10 deals changed (docs/incremental.md, Parent/child).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics_sandbox import World, serve  # noqa: E402
from tests.support import sync  # noqa: E402
from tests.test_children import child_requests, config  # noqa: E402


def main(deals: int) -> None:
    counts = {"tags": 20, "users": 50, "deals": deals, "pages": 5, "tasks": deals * 3}
    with tempfile.TemporaryDirectory() as lake, serve(World(seed=21, counts=counts)) as sandbox:
        def run(label: str) -> None:
            children, total = child_requests(sandbox), sandbox.stats()["total_requests"]
            result = sync(sandbox, Path(lake), config=config())
            print(f"{label}: child requests {child_requests(sandbox) - children:,}, all "
                  f"requests {sandbox.stats()['total_requests'] - total:,}, "
                  f"status {result['deal_tasks'].status}")

        run("first run")
        run("no-change rerun")
        for n in (1, 10):
            sandbox.advance(updates={"deals": n}, resources=["deals"], seed=n)
            run(f"rerun after {n} deal(s) changed")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
