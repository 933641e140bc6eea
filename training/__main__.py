"""CLI: ``python -m training <model|all> --profile quick|full`` trains, exports and writes a card."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from serving.inference.postprocess import headline_numbers
from serving.repository import layout
from serving.repository.training_plan import duration

from .catalog import BEYOND_FIRST_RUN, recipes
from .data import DataNotFoundError
from .estimates import REFERENCE_PROBE, in_run_order, probe, scaled
from .export import ExportError, models_dir
from .generative_eval import FeatureModelMissing
from .progress import Progress
from .template import train
from .transfer import WeightsNotFoundError

CHECKPOINTS = Path("checkpoints")


# A first run (--fast-first) trains these first, fastest first: they train in seconds or, for the
# digit CNN (the default of /digits/classify, and the generative models' judge), in a minute.
SERVED_FIRST = ("house-price-gbm", "house-price-mlp", "passengers", "mnist-cnn", "mnist-logreg", "mnist-knn",
                "mnist-tree", "mnist-forest")
TWINS = ("vae-conditional", "gan-conditional")  # only for a requested digit: last


def _estimates_here(profile: str, names: list[str], fast_first: bool) -> dict[str, float]:
    """Each model's reference seconds scaled to this machine by a second-long probe (``estimates``),
    in the order the models will train."""
    measured = probe()
    here = scaled(profile, measured)
    print("this machine against the reference one, by a short probe: " + ", ".join(
        f"{kind} {seconds / REFERENCE_PROBE[kind]:.2f}x as long" for kind, seconds in measured.items()), flush=True)
    if fast_first:
        names = sorted(names, key=lambda name: (name not in SERVED_FIRST, name in TWINS, here[name]))
    return in_run_order({name: here[name] for name in names}, measured)


def main(argv: list[str] | None = None) -> int:
    families = recipes()
    parser = argparse.ArgumentParser(
        prog="python -m training", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a ZooServe model, export it to ONNX and publish it as the next version, models/<name>/<n>/.")
    parser.add_argument("model", choices=[*families, "all"], help="model to train, or every model")
    parser.add_argument("--profile", choices=["quick", "full"], default="full",
                        help="quick: about a minute, for development; full: the reported numbers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training rows (tests)")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: $ZOOSERVE_MODELS_DIR or models/")
    parser.add_argument("--missing-only", action="store_true", help="skip models that already have a card")
    parser.add_argument("--served-only", action="store_true",
                        help=f"with all: skip the course's extra models ({', '.join(BEYOND_FIRST_RUN)}), as a first run does")
    parser.add_argument("--fast-first", action="store_true",
                        help="train the models that serve the main endpoints in seconds first, then the others, "
                             "each group in order of its estimate (the conditional twins last)")
    parser.add_argument("--progress", type=Path, default=None,
                        help="keep the plan and each model's state in this JSON file (a first run's server reads it)")
    transfer_options = parser.add_argument_group("transfer-cnn")
    transfer_options.add_argument("--backbone", choices=["efficientnet_lite0", "resnet18", "mobilenet_v3_small"],
                                  default=None, help="default: efficientnet_lite0")
    transfer_options.add_argument("--mode", choices=["feature-extraction", "fine-tune"], default=None,
                                  help="default: the profile's (quick: feature-extraction, full: fine-tune)")
    transfer_options.add_argument("--weights", choices=["imagenet", "none"], default=None,
                                  help="default: imagenet; none trains from random initialisation")
    transfer_options.add_argument("--image-folder", default=None,
                                  help="ImageFolder root with train/ and val/ (default: $DATA_DIR/hymenoptera_data)")
    gbm_options = parser.add_argument_group("house-price-gbm")
    gbm_options.add_argument("--nested", action="store_true", default=None,
                             help="also estimate the selection's error by nested cross-validation (5 outer folds, "
                                  "each a 5-fold search: about 5x the training)")
    args = parser.parse_args(argv)

    out_root = args.models_dir or models_dir()
    names = list(families) if args.model == "all" else [args.model]
    if args.served_only:
        names = [name for name in names if name not in BEYOND_FIRST_RUN]
    if args.missing_only:
        for name in [name for name in names if layout.card_file(out_root, name).exists()]:
            print(f"{name}: already in {out_root}, skipped")
            names.remove(name)
    # A --limit run (tests) is shorter than any measured profile: no probe, no estimate.
    if args.limit or not names:
        estimates = {name: 0.0 for name in names}
    else:
        estimates = _estimates_here(args.profile, names, args.fast_first)
        names = list(estimates)
    progress = Progress(args.progress, args.profile, {name: estimates[name] for name in names})

    def estimate(*chosen: str) -> str:
        return "" if args.limit else f", about {duration(sum(estimates[n] for n in chosen))} on this machine"

    if len(names) > 1:
        print(f"training {len(names)} models ({args.profile} profile) into {out_root}{estimate(*names)}")
    failed = 0
    for position, name in enumerate(names, start=1):
        print(f"[{position}/{len(names)}] {name}: training ({args.profile} profile){estimate(name)}", flush=True)
        started = time.perf_counter()
        recipe = families[name]
        checkpoint = CHECKPOINTS / f"{name}-{args.profile}-seed{args.seed}.pt"
        options = {option: getattr(args, option) for option in recipe.options if getattr(args, option) is not None}
        progress.start(name)
        try:
            card = train(recipe, args.profile, args.seed, args.limit, out_root, checkpoint, **options)
        except (DataNotFoundError, ExportError, FeatureModelMissing, WeightsNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            progress.fail(name, str(error))
            if args.progress is None:
                return 2
            failed += 1  # a first run goes on: the server serves the others
            continue
        seconds = time.perf_counter() - started
        progress.finish(name, seconds)
        checkpoint.unlink(missing_ok=True)  # the run finished; a new one starts from scratch
        shown = ", ".join(f"{key} {value:.4g}" for key, value in headline_numbers(card["metrics"]).items())
        against = "" if args.limit else f" ({seconds / estimates[name]:.2f}x the estimate)"
        print(f"{name}: wrote {out_root / name / card['version']} in {duration(seconds)}{against}: {shown}")
    if failed:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
