"""Diffusion images per second against DDIM steps: the served sampler against the PyTorch one,
eager and compiled (``torch.compile``, inductor; not in smoke runs).

ONNX Runtime runs what ``/generate/diffusion`` runs (``generation.generate``: the guided step
graph under IO binding); PyTorch runs the NumPy reference sampler ``ddim.ddim_sample``
around the eager U-Net. Both must hold the same weights: the served ones when the U-Net's
state_dict is among ``model.onnx``'s initializers, else the module's own, with its guided step
graph exported afresh, and then the served step graph is timed as well, for the objective.
The two samplers' images are compared before either is timed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from serving.inference import ddim, generation
from serving.repository.card import DDIMSampling, sampling_of
from training.diffusion import DenoisingStep, step_inputs
from training.export import torch_reference
from training.loop import torch_threads

from . import pytorch
from .common import (Context, agreement, first_call, load_card, markdown_table, missing, ort_session, ratio, timed,
                     version_dir)

NAME = "diffusion"
SEED, DIGIT, GUIDANCE = 0, 3, 2.0  # a guided request, as the endpoint's default with a digit
OBJECTIVE = {"n": 16, "steps": 50, "max_seconds": 5.0}  # the issue: /generate/diffusion on the CPU
GUIDED = ddim.GUIDED_STEP_GRAPH


def _settings(ctx: Context) -> tuple[int, tuple[int, ...], int]:
    """Images per request, the step counts and the timed repeats (a 200-step request takes seconds)."""
    return (2, (2, 3), 1) if ctx.smoke else (OBJECTIVE["n"], (10, 50, 200), 3)


@dataclass(frozen=True)
class Samplers:
    """One guided request on either engine: images in [-1, 1] (compared) or gray levels (timed)."""

    sampling: DDIMSampling
    step: ort.InferenceSession  # the guided step graph holding the PyTorch module's weights
    served_step: ort.InferenceSession  # the card's guided step graph (the same one when weights were loaded)
    eps: ddim.Run  # the eager U-Net
    compiled_eps: ddim.Run | None  # the same U-Net under torch.compile (None in smoke runs)

    def ort_images(self, n: int, steps: int) -> np.ndarray:
        return ddim.ddim_sample_on_device(self.step, True, generation.scheduler_for(self.sampling), SEED, n,
                                                steps, DIGIT, GUIDANCE)

    def torch_images(self, n: int, steps: int, compiled: bool = False) -> np.ndarray:
        eps = self.compiled_eps if compiled and self.compiled_eps is not None else self.eps
        return ddim.ddim_sample(eps, generation.scheduler_for(self.sampling), SEED, n, steps, DIGIT, GUIDANCE)

    def ort_digits(self, n: int, steps: int, session: ort.InferenceSession | None = None) -> np.ndarray:
        """What ``/generate/diffusion`` runs, on ``session`` (default: the compared step graph)."""
        return generation.generate(self.sampling, {GUIDED: session or self.step}, SEED, n, DIGIT, steps, GUIDANCE)

    def torch_digits(self, n: int, steps: int, compiled: bool = False) -> np.ndarray:
        return generation.to_uint8(self.torch_images(n, steps, compiled), self.sampling.output_range)


def _samplers(card: dict[str, Any], ctx: Context, scratch: Path) -> tuple[Samplers, str]:
    """Both engines' samplers on the same weights, and which step graph ONNX Runtime compares."""
    folder = version_dir(ctx, NAME)
    unet = pytorch.module_for(NAME, card)
    served = ort_session(folder / card["graphs"][GUIDED]["file"], ctx)
    graph, step = pytorch.SERVED, served
    if not pytorch.load_served_weights(unet, folder / card["graphs"]["model"]["file"]):
        alphas = generation.scheduler_for(sampling_of(card["sampling"])).alphas_cumprod
        example = step_inputs(alphas, 2, np.random.default_rng(0), guided=True)
        path = pytorch.fresh_export(DenoisingStep(unet, guided=True).eval(), example, ["x_prev"],
                                    scratch / "guided_step.onnx")
        graph, step = pytorch.FRESH, ort_session(path, ctx)
    eager = torch_reference(unet)
    compiled = None if ctx.smoke else pytorch.compiled_runner(unet)  # a compile takes tens of seconds
    return Samplers(sampling_of(card["sampling"]), step, served, lambda feeds: eager(feeds)[0],
                    None if compiled is None else lambda feeds: compiled(feeds)[0]), graph


def _request(sample, n: int, steps: int, repeats: int, ctx: Context) -> dict[str, float]:
    timing = timed(lambda: sample(n, steps), ctx, repeats=repeats, warmup=0)
    seconds = timing["median_ms"] / 1000.0
    return {**timing, "seconds_per_request": seconds, "images_per_s": n / seconds}


def _steps(samplers: Samplers, fresh: bool, n: int, steps: int, repeats: int, ctx: Context) -> dict[str, Any]:
    # Comparing the images (in [-1, 1], before the rounding to gray levels) warms both engines up.
    eager = samplers.torch_images(n, steps)
    check = agreement([eager], [samplers.ort_images(n, steps)])
    row: dict[str, Any] = {"steps": steps, "n": n, "agreement": check}
    if not check["agree"]:
        return {**row, "skipped": "the samplers' images disagree: timings would compare different computations"}
    row["onnxruntime"] = _request(samplers.ort_digits, n, steps, repeats, ctx)
    row["pytorch"] = _request(samplers.torch_digits, n, steps, repeats, ctx)
    row["pytorch_over_ort"] = ratio(row["pytorch"]["median_ms"], row["onnxruntime"]["median_ms"])
    if samplers.compiled_eps is not None:
        # The first call compiles the U-Net for the request's batch (a guided step runs 2n rows), once.
        compiled, row["first_compiled_request_s"] = first_call(lambda: samplers.torch_images(n, steps, True))
        row["compiled_agreement"] = agreement([eager], [compiled])
        if row["compiled_agreement"]["agree"]:
            row["pytorch_compiled"] = _request(lambda k, s: samplers.torch_digits(k, s, True), n, steps, repeats, ctx)
            row["compiled_over_ort"] = ratio(row["pytorch_compiled"]["median_ms"], row["onnxruntime"]["median_ms"])
    if fresh:
        samplers.ort_digits(n, steps, samplers.served_step)  # its own warm-up
        row["onnxruntime_served"] = _request(lambda k, s: samplers.ort_digits(k, s, samplers.served_step), n, steps,
                                             repeats, ctx)
    return row


def _objective(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The served graph's seconds for the objective's request, when this run timed it."""
    row = next((row for row in rows if (row["n"], row["steps"]) == (OBJECTIVE["n"], OBJECTIVE["steps"])
                and "onnxruntime" in row), None)
    seconds = None if row is None else row.get("onnxruntime_served", row["onnxruntime"])["seconds_per_request"]
    return {**OBJECTIVE, "seconds": seconds, "met": None if seconds is None else seconds <= OBJECTIVE["max_seconds"],
            "note": "in-process ONNX Runtime sampling on the served graph; over HTTP the service's sessions "
                    "use every core"}


def run(ctx: Context) -> dict:
    card = load_card(ctx, NAME)
    if card is None:
        return missing(NAME, ctx)
    n, step_counts, repeats = _settings(ctx)
    with torch_threads(ctx.threads), tempfile.TemporaryDirectory(prefix="bench-diffusion-") as scratch:
        samplers, graph = _samplers(card, ctx, Path(scratch))
        rows = [_steps(samplers, graph == pytorch.FRESH, n, steps, repeats, ctx) for steps in step_counts]
    return {"model": NAME, "version": card["version"], "threads": ctx.threads, "graph_compared": graph,
            "digit": DIGIT, "guidance": GUIDANCE, "seed": SEED, "steps": rows, "objective": _objective(rows)}


def _compiled_cells(row: dict[str, Any]) -> list[object]:
    """compiled s/request and compiled / ORT: blank where nothing was compiled."""
    if "compiled_agreement" not in row:
        return ["", ""]
    if "pytorch_compiled" not in row:
        return [f"disagrees by {row['compiled_agreement']['max_abs_diff']:.2g}", ""]
    return [row["pytorch_compiled"]["seconds_per_request"], row["compiled_over_ort"]]


def markdown(result: dict) -> str:
    title = "### Diffusion: images per second against DDIM steps"
    if "skipped" in result:
        return f"{title}\n\n`{result['model']}` skipped: {result['skipped']}.\n"
    rows: list[list[object]] = []
    for row in result["steps"]:
        if "skipped" in row:
            rows.append([row["steps"], row["n"], row["agreement"]["max_abs_diff"], f"skipped: {row['skipped']}",
                         *[""] * 7])
            continue
        ort_r, torch_r = row["onnxruntime"], row["pytorch"]
        served = row.get("onnxruntime_served", ort_r)["seconds_per_request"]
        rows.append([row["steps"], row["n"], row["agreement"]["max_abs_diff"], ort_r["seconds_per_request"],
                     torch_r["seconds_per_request"], ort_r["images_per_s"], torch_r["images_per_s"],
                     row["pytorch_over_ort"], *_compiled_cells(row), served])
    objective = result["objective"]
    verdict = ("not measured in this run" if objective["met"] is None else
               f"{objective['seconds']:.2f} s, {'met' if objective['met'] else 'NOT met'}")
    return "\n".join([
        title,
        "",
        f"One guided request (digit {result['digit']}, guidance {result['guidance']}, seed {result['seed']}) per "
        f"call, median seconds on {result['threads']} thread(s): ONNX Runtime through the served sampler "
        "(`generation.generate`: the guided step graph with IO binding) against the NumPy DDIM sampler around "
        "the eager PyTorch U-Net (and, outside smoke runs, the U-Net under `torch.compile`, inductor, whose "
        "images must agree with eager's), on the same weights "
        f"(ONNX Runtime's step graph: {result['graph_compared']}); "
        "the samplers' images agree (max abs diff, pixels in [-1, 1]) before timing. Objective: "
        f"n={objective['n']} at {objective['steps']} steps in <= {objective['max_seconds']:g} s: {verdict} "
        f"({objective['note']}).",
        "",
        markdown_table(["steps", "n", "max abs diff", "ORT s/request", "PyTorch s/request", "ORT images/s",
                        "PyTorch images/s", "PyTorch / ORT", "compiled s/request", "compiled / ORT",
                        "served graph s/request"], rows),
        "",
    ])
