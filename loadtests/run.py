"""``make loadtest``: start the server on loopback (or use ``URL``), run Locust headless with
bounded users and duration, write CSV and HTML to ``reports/loadtest/``, print the table.

On a 2-core machine the load generator competes with the server, so each is pinned to its own
core with ``taskset`` when available; the report says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from loadtests import report
from loadtests.server import REPO, pinned, served, target_parser

BIN = Path(sys.executable).parent
RATE = float(os.environ.get("LOADTEST_RATE_PER_USER", "5"))  # requests/s each constant-throughput user offers


def locust_command(url: str, users: int, spawn_rate: float, duration: str, prefix: Path,
                   families: list[str], html: Path | None = None) -> list[str]:
    """Locust headless on core 1, CSV stats under ``prefix`` (and an HTML report when asked)."""
    return pinned(1, [str(BIN / "locust"), "-f", str(REPO / "loadtests" / "locustfile.py"), "--headless",
                      "--host", url, "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", duration,
                      "--csv", str(prefix), *(["--html", str(html)] if html else []), "--only-summary", *families])


def main(argv: list[str] | None = None) -> int:
    parser = target_parser(__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--family", nargs="*", default=[], help="user classes to run alone, e.g. DigitsUser")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "loadtest")
    parser.add_argument("--objectives", type=Path, default=report.OBJECTIVES)
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    prefix = args.out / "run"
    stats = Path(str(prefix) + "_stats.csv")
    stats.unlink(missing_ok=True)  # a failed run must not report the previous run's numbers
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(served(args.port, args.out / "server.log"))
        locust = subprocess.run(locust_command(url, args.users, args.spawn_rate, args.duration, prefix, args.family,
                                               args.out / "report.html"), cwd=REPO, check=False)
    if not stats.exists():
        print(f"error: Locust wrote no statistics (exit code {locust.returncode}); its messages are above "
              f"(is DATA_DIR set? the users send real dataset rows)", file=sys.stderr)
        return 2
    print(f"\nserver on core 0, Locust on core 1 (taskset: {'yes' if shutil.which('taskset') else 'no'}); "
          f"{args.users} users x {RATE:g} req/s, {args.duration}\n")
    return report.main([str(stats), "--markdown", str(args.out / "table.md"),
                        "--objectives", str(args.objectives)])


if __name__ == "__main__":
    sys.exit(main())
