"""``make serve``: the server answers from the start while the missing models train beside it.

``python -m training.first_run [--host H] [--port P]`` starts ``python -m training all --profile
quick --missing-only --fast-first --progress FILE`` and, once the trainer has written its plan,
the server with ``ZOOSERVE_TRAINING_PROGRESS=FILE``. The server picks up each model as its card
appears, answers 503 with the time still needed for the others, and reports ready when every
planned model is loaded. With every model already trained, the plan is empty and the server starts
as usual. Stopping this command (Ctrl-C, SIGTERM) stops both.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from serving.runtime.launch import serve_command

PROGRESS = Path("logs") / "first-run.json"
# `make serve` keeps a prediction log by default (ZOOSERVE_PREDICTION_LOG=off turns it off).
PREDICTION_LOG = "sqlite:///logs/predictions.db"
PLAN_WAIT_SECONDS = 120  # the trainer writes its plan after importing PyTorch and a second-long probe


def _wait_for_plan(trainer: subprocess.Popen, progress: Path) -> None:
    deadline = time.monotonic() + PLAN_WAIT_SECONDS
    while not progress.exists() and trainer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.first_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--profile", choices=["quick", "full"], default="quick")
    parser.add_argument("--progress", type=Path, default=PROGRESS, help="where the trainer keeps its plan")
    args = parser.parse_args(argv)

    args.progress.unlink(missing_ok=True)
    trainer = subprocess.Popen([sys.executable, "-m", "training", "all", "--profile", args.profile, "--missing-only",
                                "--served-only", "--fast-first", "--progress", str(args.progress)])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # through the finally below: both children stop
    server = None
    try:
        _wait_for_plan(trainer, args.progress)
        server = subprocess.Popen(serve_command(args.port, args.host),
                                  env={"ZOOSERVE_WATCH": "on",  # retrain while it serves
                                       "ZOOSERVE_PREDICTION_LOG": PREDICTION_LOG, **os.environ,
                                       "ZOOSERVE_TRAINING_PROGRESS": str(args.progress.resolve())})
        reported = False
        while server.poll() is None:
            if not reported and trainer.poll() is not None:
                reported = True
                outcome = "every model trained" if trainer.returncode == 0 else \
                    f"training ended with exit code {trainer.returncode} (its errors are above)"
                print(f"make serve: {outcome}; the server goes on at http://{args.host}:{args.port}", flush=True)
            time.sleep(1)
        return server.returncode
    except KeyboardInterrupt:
        return 130
    finally:
        _stop(trainer)
        if server is not None:
            _stop(server)


if __name__ == "__main__":
    sys.exit(main())
