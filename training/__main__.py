"""CLI: ``python -m training <model|all> --profile quick|full`` trains, exports and writes a card."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Callable

from serving.postprocess import headline_numbers

from .data import DataNotFoundError
from .export import ExportError, models_dir
from .generative_eval import FeatureModelMissing
from .transfer import WeightsNotFoundError

CHECKPOINTS = Path("checkpoints")


def _trainers() -> dict[str, Callable[..., dict]]:
    from . import diffusion, gan, house_price, mnist, passengers, transfer, vae

    return {
        "house-price-gbm": house_price.train_gbm,
        "house-price-mlp": house_price.train_mlp,
        "mnist-cnn": mnist.train,  # before the generative models: their FID is measured with it
        "transfer-cnn": transfer.train,
        "passengers": passengers.train,
        "vae": vae.train,
        "gan": gan.train,
        "diffusion": diffusion.train,
    }


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
    for name in names:
        if args.missing_only and (out_root / name / "card.json").exists():
            print(f"{name}: already in {out_root}, skipped")
            continue
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
        shown = headline_numbers(card["metrics"])
        print(f"{name}: wrote {out_root / name} (version {card['version']}) {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
