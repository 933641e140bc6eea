"""How well ``/digits/classify`` reads the pictures people send: accuracy per family of pictures.

    python -m bench.robustness                       # models/mnist-cnn, 200 pictures per family
    python -m bench.robustness --per-family 500 --models-dir ../full/models

Every picture goes through the endpoint's own code (``serving.inference.images.decode`` and ``to_mnist``,
then the ``mnist-cnn`` graph), so the figures are what an upload gets. Writes
``reports/robustness/robustness.json``, ``robustness.md`` and, per family, ``<family>.png``: the
first ten pictures as sent, what the model was given (28x28) and what it read.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw

from loadtests.report import markdown_table
from serving.errors import ServiceError
from serving.inference.images import MNIST_MEAN, MNIST_STD, decode, to_mnist
from serving.repository import layout
from serving.repository.registry import read_verified_card
from training.plots import reports_dir

from .digit_pictures import FAMILIES, family

EXAMPLES = 10


def read_pictures(session: ort.InferenceSession, pictures: list[tuple[int, bytes]]) -> dict:
    """Accuracy of the graph on the pictures through the upload path; a refusal counts as wrong."""
    inputs, refused = [], 0
    for _, data in pictures:
        try:
            inputs.append(to_mnist(decode(data)))
        except ServiceError:
            refused += 1
            inputs.append(np.full((1, 28, 28), -MNIST_MEAN / MNIST_STD, np.float32))
    batch = np.stack(inputs)
    read = session.run(None, {"image": batch})[0].argmax(axis=1)
    labels = np.array([label for label, _ in pictures])
    return {"accuracy": float((read == labels).mean()), "pictures": len(pictures), "refused": refused,
            "read": read.tolist(), "inputs": batch}


def example_sheet(pictures: list[tuple[int, bytes]], inputs: np.ndarray, read: list[int], path: Path) -> None:
    """Pictures as sent (top), the model's 28x28 input (middle) and what it read (bottom)."""
    cell = 96
    sheet = Image.new("RGB", (cell * EXAMPLES, 2 * cell + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for i, ((label, data), given) in enumerate(zip(pictures[:EXAMPLES], inputs[:EXAMPLES])):
        sheet.paste(decode(data).convert("RGB").resize((cell, cell)), (i * cell, 0))
        pixels = np.clip((given[0] * MNIST_STD + MNIST_MEAN) * 255, 0, 255).astype(np.uint8)
        sheet.paste(Image.fromarray(pixels).resize((cell, cell), Image.Resampling.NEAREST).convert("RGB"),
                    (i * cell, cell))
        mark = "ok" if read[i] == label else "WRONG"
        draw.text((i * cell + 4, 2 * cell + 4), f"{label} -> {read[i]} {mark}", fill="black" if mark == "ok" else "red")
    sheet.save(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get("ZOOSERVE_MODELS_DIR", "models")))
    parser.add_argument("--per-family", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="", help="a name for this run in the report (e.g. before/after)")
    args = parser.parse_args(argv)
    model_dir = layout.newest(args.models_dir / "mnist-cnn")
    card = read_verified_card(model_dir)  # the graph the service would serve, its sha256 checked
    session = ort.InferenceSession(str(model_dir / card.graphs["model"].file), providers=["CPUExecutionProvider"])
    out = reports_dir("robustness")
    rows = []
    for name in FAMILIES:
        pictures = family(name, args.per_family, args.seed)
        result = read_pictures(session, pictures)
        example_sheet(pictures, result["inputs"], result["read"], out / f"{name}.png")
        rows.append({"family": name, "pictures": result["pictures"], "accuracy": result["accuracy"],
                     "refused": result["refused"]})
        print(json.dumps(rows[-1]), flush=True)
    report = {"label": args.label, "model": {"name": "mnist-cnn", "version": card.version},
              "mnist_test_accuracy_through_upload": card.metrics.get("test_accuracy_through_upload_preprocessing"),
              "seed": args.seed, "rows": rows}
    (out / "robustness.json").write_text(json.dumps(report, indent=2))
    table = markdown_table(["family", "pictures", "accuracy", "refused (400)"],
                           [[r["family"], r["pictures"], f"{r['accuracy']:.1%}", r["refused"]] for r in rows])
    (out / "robustness.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
