"""``make saturation``: the throughput at which p99 passes 100 ms, for one endpoint family alone.

Steps the offered load up (constant-throughput users at 5 requests/s each, so users x 5 req/s)
and runs Locust for a while at each level, server on core 0 and Locust on core 1 as in
``make loadtest``. It stops at the first level whose p99 exceeds the limit or whose requests
fail; the saturation throughput is the highest rate served within the limit. Levels where Locust
warned that its own core was saturated are flagged: there the generator, not the server, limits.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from loadtests import report
from loadtests.run import RATE, REPO, locust_command
from loadtests.server import served, target_parser


def _level(url: str, family: str, users: int, duration: str, prefix: Path) -> dict:
    result = subprocess.run(locust_command(url, users, users, duration, prefix, [family]), cwd=REPO,
                            capture_output=True, text=True, check=False)
    (row,) = [row for row in report.read_stats(Path(f"{prefix}_stats.csv")) if row["name"] != "Aggregated"]
    return {"users": users, "offered req/s": users * RATE, **{key: row[key] for key in report.COLUMNS},
            "locust cpu warning": "CPU usage above" in result.stderr + result.stdout}


def main(argv: list[str] | None = None) -> int:
    parser = target_parser(__doc__)
    parser.add_argument("--family", default="HousePriceUser")
    parser.add_argument("--levels", type=int, nargs="+", default=[20, 40, 60, 80, 100, 140, 180, 240, 300],
                        help="user counts to step through")
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "loadtest" / "saturation")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    levels = []
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(served(args.port, args.out / "server.log"))
        for users in args.levels:
            levels.append(_level(url, args.family, users, args.duration, args.out / f"users{users}"))
            print(f"{users} users: {levels[-1]['req/s']:.0f} req/s, p99 {levels[-1]['p99 ms']:.0f} ms", flush=True)
            if levels[-1]["p99 ms"] > args.p99_limit_ms or levels[-1]["failures"]:
                break
    within = [level for level in levels if level["p99 ms"] <= args.p99_limit_ms and not level["failures"]]
    columns = ["users", "offered req/s", *report.COLUMNS, "locust cpu warning"]
    verdict = f"saturation throughput ({args.family}, p99 <= {args.p99_limit_ms:g} ms): " + (
        f"{max(level['req/s'] for level in within):.0f} req/s" if within else "below the lowest level tried")
    if within and within[-1] is levels[-1]:
        verdict += " (the limit was not reached at the highest level tried)"
    text = report.markdown(levels, columns) + f"\n\n{verdict}\n"
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
