"""``python -m training.labs [name ...]``: run the labs (all by default), print each one's figures file.

``--tiny`` runs the test suite's configuration (fewer epochs and repetitions, seconds each).
"""

from __future__ import annotations

import argparse
import time

from . import ex0_fibonacci, ex2_outliers, ex4_vanishing_gradients, ex5_normalisation, ex6_garbage_in

LABS = {module.NAME: module for module in (ex0_fibonacci, ex2_outliers, ex4_vanishing_gradients, ex5_normalisation,
                                           ex6_garbage_in)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="name", help=f"labs to run: {', '.join(LABS)} (default: all)")
    parser.add_argument("--tiny", action="store_true", help="the test configuration")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.names) - set(LABS)):
        parser.error(f"no lab named {', '.join(unknown)} (labs: {', '.join(LABS)})")
    for name in args.names or LABS:
        started = time.perf_counter()
        figures = LABS[name].run(tiny=args.tiny)
        print(f"{name}: {figures['figures']} and {figures['plot']} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
