"""Where a request's CPU goes in ZooServe's API worker, by layer, under load.

    python -m bench.profile_worker --models-dir models [--path /house-price/predict] [--seconds 20]

Starts ZooServe pinned to core 0 (as ``make bench`` does), loads it with wrk at 8 connections from
core 1, samples the API worker with py-spy and charges each sample's self time to the layer that
owns the innermost frame outside the standard library (a ``json.dumps`` called by Starlette is
Starlette's cost), ZooServe's modules each by name. Writes ``reports/profile-<path>.json`` and
the collapsed stacks beside it (``speedscope`` or ``flamegraph.pl`` draw them).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil

from loadtests.server import REPO

from .floor import cases, pinned_server
from .http_load import client_core
from .load_tools import closed_loop

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(:\d+)?\)$")
STDLIB = re.compile(r"/lib/python3\.\d+/(?!site-packages/)")
LAYERS = (  # first match wins; a file outside all of them is "other"
    ("/serving/", None),  # ZooServe: named by module below
    ("/opentelemetry/", "OpenTelemetry"),
    ("/bentoml/_internal/server/http/access", "BentoML access log"),
    ("/bentoml/_internal/server/http/instruments", "BentoML metrics middleware"),
    ("/bentoml/_internal/server/http/traffic", "BentoML timeout/concurrency"),
    ("/_bentoml_impl/", "BentoML request handling"),
    ("/_bentoml_sdk/", "BentoML request handling"),
    ("/bentoml/", "BentoML request handling"),
    ("/simple_di/", "BentoML request handling"),
    ("/prometheus_client/", "prometheus_client"),
    ("/pydantic", "pydantic"),
    ("/starlette/", "Starlette"),
    ("/uvicorn/", "uvicorn"),
    ("/onnxruntime/", "ONNX Runtime"),
    ("/numpy/", "NumPy"),
    ("/anyio/", "anyio (thread hand-off)"),
)
STDLIB_LAYERS = (("/logging/", "logging"), ("/asyncio/", "event loop (asyncio)"))


def layer_of(frame_file: str) -> str:
    for marker, name in LAYERS:
        if marker in frame_file:
            return name or f"ZooServe {Path(frame_file).stem}"
    return "other"


def owner(stack: list[str]) -> str:
    """The layer charged for a sample whose innermost frame is ``stack[-1]``."""
    files = [match["file"] if (match := FRAME.match(frame)) else "" for frame in stack]
    for frame_file in reversed(files):
        if not STDLIB.search(frame_file):
            return layer_of(frame_file)
        for marker, name in STDLIB_LAYERS:  # logging and the event loop are costs of their own
            if marker in frame_file:
                return name
    return "other"


def breakdown(collapsed: str) -> dict[str, float]:
    """Share of samples per layer from py-spy's collapsed output (``a;b;c count`` lines)."""
    totals: collections.Counter[str] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame for frame in stack.split(";") if not frame.startswith(("process ", "thread "))]
        if frames and count.isdigit():
            totals[owner(frames)] += int(count)
    samples = sum(totals.values()) or 1
    return {name: count / samples for name, count in totals.most_common()}


def api_worker(server: psutil.Process) -> psutil.Process:
    """The worker answering the public routes (the dependency workers name their service)."""
    for child in server.children(recursive=True):
        command = child.cmdline()
        if "_bentoml_impl.worker.service" in command and "zooserve" == command[command.index("--service-name") + 1]:
            return child
    raise RuntimeError("no API worker found under the server")


def profile(models_dir: Path, path: str, seconds: float, out: Path) -> dict:
    if shutil.which("py-spy") is None and not Path(sys.executable).with_name("py-spy").exists():
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    request = next(zoo for floor, zoo in cases(models_dir).values() if zoo.path == path)
    env = {"ZOOSERVE_MODELS_DIR": str(models_dir.resolve())}
    with tempfile.TemporaryDirectory() as logs, client_core(), \
            pinned_server(Path(logs) / "zoo.log", env, None) as (url, srv):
        worker = api_worker(srv)
        closed_loop(url, request, 8, 3)  # warm-up
        stacks = Path(logs) / "stacks.txt"
        recorder = threading.Thread(target=subprocess.run, args=([
            spy, "record", "--pid", str(worker.pid), "--rate", "200", "--duration", str(int(seconds)),
            "--format", "raw", "--nonblocking", "--full-filenames", "--output", str(stacks)],),
            kwargs={"capture_output": True})
        recorder.start()
        load = closed_loop(url, request, 8, seconds)
        recorder.join()
        collapsed = stacks.read_text()
    out.mkdir(parents=True, exist_ok=True)
    stem = "profile-" + path.strip("/").replace("/", "-")
    (out / f"{stem}.txt").write_text(collapsed)
    result = {"path": path, "load": load, "layers": breakdown(collapsed)}
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--path", default="/house-price/predict")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "reports")
    args = parser.parse_args(argv)
    result = profile(args.models_dir, args.path, args.seconds, args.out)
    print(f"{result['load']['requests_per_s']:.0f} req/s at 8 connections on {args.path}")
    for name, share in result["layers"].items():
        print(f"{share:6.1%}  {name}")


if __name__ == "__main__":
    main()
