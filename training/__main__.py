"""CLI: ``python -m training <model|all> --profile quick|full`` trains, exports and writes a card."""

from __future__ import annotations

import argparse
import functools
import inspect
import sys
import time
from pathlib import Path
from typing import Callable

from serving.postprocess import headline_numbers

from .data import DataNotFoundError
from .export import ExportError, models_dir
from .generative_eval import FeatureModelMissing
from .transfer import WeightsNotFoundError

CHECKPOINTS = Path("checkpoints")


def _trainers() -> dict[str, Callable[..., dict]]:
    from . import classical, diffusion, gan, house_price, mnist, passengers, transfer, vae

    return {
        "house-price-gbm": house_price.train_gbm,
        "house-price-mlp": house_price.train_mlp,
        "mnist-cnn": mnist.train,  # before the generative models: their FID is measured with it
        **classical.TRAINERS,  # mnist-logreg, mnist-knn, mnist-tree, mnist-forest
        "transfer-cnn": transfer.train,
        "passengers": passengers.train,
        "vae": vae.train,
        "gan": gan.train,
        "diffusion": diffusion.train,
        # Last: the class-conditional twins only draw a requested digit for /generate/vae and /generate/gan.
        "vae-conditional": functools.partial(vae.train, conditional=True),
        "gan-conditional": functools.partial(gan.train, conditional=True),
    }


# Wall seconds per model on an idle 2-core machine (measured 2026-11-29; the vae, gan and their twins
# 2026-11-30 with another training on the other core, the full GANs as their CPU seconds; README, "First run"),
# printed before each training so that a first `make serve` says how long it will take.
ESTIMATED_SECONDS = {
    "quick": {"house-price-gbm": 15, "house-price-mlp": 12, "mnist-cnn": 45, "mnist-logreg": 25, "mnist-knn": 15,
              "mnist-tree": 6, "mnist-forest": 14, "transfer-cnn": 30, "passengers": 5, "vae": 65, "gan": 60,
              "vae-conditional": 60, "gan-conditional": 70, "diffusion": 210},
    "full": {"house-price-gbm": 50, "house-price-mlp": 200, "mnist-cnn": 460, "mnist-logreg": 200, "mnist-knn": 120,
             "mnist-tree": 45, "mnist-forest": 60, "transfer-cnn": 120, "passengers": 21, "vae": 1150, "gan": 3700,
             "vae-conditional": 1000, "gan-conditional": 3700, "diffusion": 3600},
}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _accepts(train: Callable[..., dict], option: str) -> bool:
    return option in inspect.signature(train).parameters


def main(argv: list[str] | None = None) -> int:
    trainers = _trainers()
    parser = argparse.ArgumentParser(
        prog="python -m training", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a ZooServe model, export it to ONNX and write models/<name>/card.json.")
    parser.add_argument("model", choices=[*trainers, "all"], help="model to train, or every model")
    parser.add_argument("--profile", choices=["quick", "full"], default="full",
                        help="quick: about a minute, for development; full: the reported numbers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training rows (tests)")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: $ZOOSERVE_MODELS_DIR or models/")
    parser.add_argument("--missing-only", action="store_true", help="skip models that already have a card")
    transfer_options = parser.add_argument_group("transfer-cnn")
    transfer_options.add_argument("--backbone", choices=["efficientnet_lite0", "resnet18", "mobilenet_v3_small"],
                                  default=None, help="default: efficientnet_lite0")
    transfer_options.add_argument("--mode", choices=["feature-extraction", "fine-tune"], default=None,
                                  help="default: the profile's (quick: feature-extraction, full: fine-tune)")
    transfer_options.add_argument("--weights", choices=["imagenet", "none"], default=None,
                                  help="default: imagenet; none trains from random initialisation")
    transfer_options.add_argument("--image-folder", default=None,
                                  help="ImageFolder root with train/ and val/ (default: $DATA_DIR/hymenoptera_data)")
    args = parser.parse_args(argv)

    out_root = args.models_dir or models_dir()
    names = list(trainers) if args.model == "all" else [args.model]
    if args.missing_only:
        for name in [name for name in names if (out_root / name / "card.json").exists()]:
            print(f"{name}: already in {out_root}, skipped")
            names.remove(name)
    estimates = ESTIMATED_SECONDS[args.profile]

    def estimate(*chosen: str) -> str:  # a --limit run (tests) is shorter than any measured profile
        return "" if args.limit else f", about {_duration(sum(estimates[n] for n in chosen))} on an idle 2-core machine"

    if len(names) > 1:
        print(f"training {len(names)} models ({args.profile} profile) into {out_root}{estimate(*names)}")
    for position, name in enumerate(names, start=1):
        print(f"[{position}/{len(names)}] {name}: training ({args.profile} profile){estimate(name)}", flush=True)
        started = time.perf_counter()
        train = trainers[name]
        kwargs = {"profile": args.profile, "seed": args.seed, "limit": args.limit, "out_root": out_root}
        checkpoint = CHECKPOINTS / f"{name}-{args.profile}-seed{args.seed}.pt"
        if _accepts(train, "checkpoint"):
            kwargs["checkpoint"] = checkpoint
        for option in ("backbone", "mode", "weights", "image_folder"):
            if getattr(args, option) is not None and _accepts(train, option):
                kwargs[option] = getattr(args, option)
        try:
            card = train(**kwargs)
        except (DataNotFoundError, ExportError, FeatureModelMissing, WeightsNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        checkpoint.unlink(missing_ok=True)  # the run finished; a new one starts from scratch
        shown = ", ".join(f"{key} {value:.4g}" for key, value in headline_numbers(card["metrics"]).items())
        print(f"{name}: wrote {out_root / name} (version {card['version']}) in "
              f"{_duration(time.perf_counter() - started)}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
