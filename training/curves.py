"""Learning-curve figures from the cards of a models directory, for the documentation.

``python -m training.curves --models-dir models --out docs/curves`` draws, for every model whose
newest card holds a curve, ``<name>.png`` (loss and validation score per epoch) and, for the house
models, ``<name>-by-size.png`` (error against training-set size with fold error bars). The cards
are the only input: the figures show what serving shows on the page.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serving.repository import layout

from . import plots
from .export import models_dir


def draw(models_root: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name in layout.model_names(models_root):
        card = json.loads(layout.card_file(models_root, name).read_text())
        if "history" in card.get("validation", {}) or card.get("members"):
            drawn.append(plots.learning_curves(card, out / f"{name}.png"))
        if "learning_curve_by_size" in card:
            drawn.append(plots.size_curve(card, out / f"{name}-by-size.png"))
    return drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.curves", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=None, help="default: $ZOOSERVE_MODELS_DIR or models/")
    parser.add_argument("--out", type=Path, default=Path("docs/curves"))
    args = parser.parse_args(argv)
    for path in draw(args.models_dir or models_dir(), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
