"""Choose the diffusion model's default guidance without looking at the test set.

``python -m training.guidance_sweep sweep --guidance 1.5 2 --images 3000`` draws conditional
samples from the exported guided step graph at each guidance weight and scores them against the
5,000-image validation slice (FID in mnist-cnn features, and how often the classifier reads the
requested digit). ``python -m training.guidance_sweep choose`` then takes the weight with the
lowest validation FID among those that keep the conditional accuracy target, makes it the card's
default (what ``/generate/diffusion`` uses when a request names none) and measures the card's
test metrics once, at that default, on the same graphs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from serving.inference.ddim import GUIDED_STEP_GRAPH, STEP_GRAPH
from serving.inference.postprocess import softmax
from serving.repository import layout
from serving.repository.card import sampling_of

from .data import mnist_arrays
from .diffusion import NAME
from .export import cpu_session, models_dir
from .generative_eval import conditional_samples, evaluate_generator, feature_session, selection_fid
from .mnist import logits_and_features, normalize, validation_split
from .plots import reports_dir

ACCURACY_TARGET = 0.95  # the floor for reading the requested digit


def _report() -> Path:
    return reports_dir(NAME) / "guidance-sweep.json"


def _card_path(models_root: Path) -> Path:
    """The newest version's card: the one the sweep reads and ``choose`` rewrites."""
    return layout.card_file(models_root, NAME)


def sweep(models_root: Path, weights: list[float], images: int, steps: int | None, seed: int) -> list[dict]:
    card = json.loads(_card_path(models_root).read_text())
    version = _card_path(models_root).parent
    sessions = {GUIDED_STEP_GRAPH: cpu_session(version / card["graphs"][GUIDED_STEP_GRAPH]["file"])}
    train_images, _ = mnist_arrays(train=True)
    validation, _ = validation_split(len(train_images), None)
    fid = selection_fid(models_root, train_images[validation])
    classifier = feature_session(models_root)
    rows = []
    for weight in weights:
        samples, requested = conditional_samples(sampling_of(card["sampling"]), sessions, images, seed, steps=steps,
                                                 guidance=weight)
        read = softmax(logits_and_features(classifier, normalize(samples))[0])
        rows.append({"guidance": weight, "fid_vs_validation": fid(samples),
                     "conditional_accuracy": float((read.argmax(axis=1) == requested).mean()),
                     "mean_top_class_probability": float(read.max(axis=1).mean())})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def choose(models_root: Path) -> dict:
    """Make the sweep's best weight the card's default guidance and re-measure the test metrics at it."""
    sweep_report = json.loads(_report().read_text())
    eligible = [row for row in sweep_report["rows"] if row["conditional_accuracy"] >= ACCURACY_TARGET]
    if not eligible:
        raise SystemExit(f"no swept weight reaches {ACCURACY_TARGET:.0%} conditional accuracy; sweep higher ones")
    best = min(eligible, key=lambda row: row["fid_vs_validation"])
    card = json.loads(_card_path(models_root).read_text())
    card["sampling"]["default_guidance"] = best["guidance"]
    # Both step graphs: the card's metrics score the model without a digit asked, too.
    sessions = {graph: cpu_session(_card_path(models_root).parent / card["graphs"][graph]["file"])
                for graph in (GUIDED_STEP_GRAPH, STEP_GRAPH)}
    measured = card["metrics"]
    card["metrics"] = {**measured, **evaluate_generator(
        models_root, sampling_of(card["sampling"]), sessions, measured["generated_images"], reports_dir(NAME), NAME,
        conditional=True, seed=measured["sampling"]["seed"], steps=measured["sampling"]["steps"],
        guidance=best["guidance"])}
    card["guidance_choice"] = {"rule": f"lowest FID against the validation slice among weights with conditional "
                                       f"accuracy >= {ACCURACY_TARGET:.0%}", **sweep_report}
    _card_path(models_root).write_text(json.dumps(card, indent=2))
    return card


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=None)
    commands = parser.add_subparsers(dest="command", required=True)
    sweep_options = commands.add_parser("sweep", help="score guidance weights against the validation slice")
    sweep_options.add_argument("--guidance", type=float, nargs="+", required=True)
    sweep_options.add_argument("--images", type=int, default=3000, help="samples per guidance weight")
    sweep_options.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the card's)")
    sweep_options.add_argument("--seed", type=int, default=1, help="differs from the card's evaluation seed (0)")
    commands.add_parser("choose", help="make the sweep's best weight the card's default; re-measure the card")
    args = parser.parse_args(argv)
    models_root = args.models_dir or models_dir()
    if args.command == "choose":
        card = choose(models_root)
        print(f"default guidance {card['sampling']['default_guidance']}: FID {card['metrics']['fid']:.3f}, "
              f"conditional accuracy {card['metrics']['conditional_accuracy']:.2%}")
        return
    rows = sweep(models_root, args.guidance, args.images, args.steps, args.seed)
    _report().write_text(json.dumps({"images": args.images, "steps": args.steps, "seed": args.seed, "rows": rows},
                                    indent=2))
    print(f"wrote {_report()}")


if __name__ == "__main__":
    main()
