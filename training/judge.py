"""How a models directory's generators read to another directory's classifier.

``python -m training.judge --models-dir models --judge-dir ../full/models`` draws samples from
each generator's exported graphs at the card's defaults (what the endpoints serve) and scores
them with the judge's ``mnist-cnn``: its mean top-class probability, how often it reads the
requested digit (conditional models) and FID in its features. This is how the quick profile's
generators are held to the full classifier (README, "First run"): a quick classifier trained
for a minute is too lenient a reader.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from serving.repository import layout
from serving.repository.card import DDIMSampling, sampling_of
from serving.repository.catalog import GENERATIVE_MODELS

from .export import cpu_session, models_dir
from .generative_eval import evaluate_generator
from .plots import reports_dir

HEADLINE = ("mean_top_class_probability", "classifier_score", "conditional_accuracy", "fid", "fid_interval_95",
            "fid_floor_validation_vs_test", "kid", "classes_read")


def judge(models_root: Path, judge_root: Path, name: str, images: int, seed: int) -> dict[str, Any]:
    version = layout.newest(models_root / name)
    card = json.loads((version / layout.CARD).read_text())
    sessions = {graph: cpu_session(version / spec["file"]) for graph, spec in card["graphs"].items()}
    sampling = sampling_of(card["sampling"])
    knobs = dict(zip(("steps", "guidance"), sampling.resolved())) if isinstance(sampling, DDIMSampling) else {}
    metrics = evaluate_generator(judge_root, sampling, sessions, images, reports_dir(f"judge-{name}"), name,
                                 conditional=card["conditional"], seed=seed, **knobs)
    return {"model": name, "profile": card["profile"], "version": card["version"],
            "train_wall_seconds": card["training"].get("wall_seconds"),
            **{key: metrics[key] for key in HEADLINE if key in metrics}, "judge": metrics["feature_model"],
            "samples_png": metrics["samples_png"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=None, help="the generators (default: models/)")
    parser.add_argument("--judge-dir", type=Path, required=True, help="a models directory holding mnist-cnn")
    parser.add_argument("--images", type=int, default=1000, help="samples per generator")
    parser.add_argument("--seed", type=int, default=1, help="differs from the cards' evaluation seed (0)")
    args = parser.parse_args(argv)
    models_root = args.models_dir or models_dir()
    rows = [judge(models_root, args.judge_dir, name, args.images, args.seed)
            for name in GENERATIVE_MODELS if layout.card_file(models_root, name).is_file()]
    report = reports_dir("judge") / "judge.json"
    report.write_text(json.dumps({"images": args.images, "seed": args.seed, "rows": rows}, indent=2))
    for row in rows:
        print(json.dumps({key: value for key, value in row.items() if key not in ("judge", "samples_png")}))
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
