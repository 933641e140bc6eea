"""FID against DDIM steps, deterministic (eta = 0) and DDPM's stochastic sampling (eta = 1).

``python -m training.eta_sweep --steps 5 10 20 50 100 200 --eta 0 1 --images 1000`` draws
unconditional samples from the served diffusion model's step graph at each steps and eta (the
sampler ``/generate/diffusion`` runs), scores each set against the 5,000-image validation slice
(FID in mnist-cnn features; never the test set) and writes ``reports/diffusion/eta-sweep.json``
and ``eta-sweep.png``. What the notes teach shows there: DDPM's ancestral sampler needs many
steps, DDIM's deterministic one few.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt

from serving.inference.ddim import STEP_GRAPH
from serving.repository import layout
from serving.repository.card import sampling_of

from .data import mnist_arrays
from .diffusion import NAME
from .export import cpu_session, models_dir
from .generative_eval import generate_many, selection_fid
from .mnist import validation_split
from .plots import reports_dir, save


def sweep(models_root: Path, steps: list[int], etas: list[float], images: int, seed: int) -> list[dict]:
    version = layout.newest(models_root / NAME)
    card = json.loads((version / layout.CARD).read_text())
    sampling = sampling_of(card["sampling"])
    sessions = {STEP_GRAPH: cpu_session(version / card["graphs"][STEP_GRAPH]["file"])}
    train_images, _ = mnist_arrays(train=True)
    validation, _ = validation_split(len(train_images), None)
    fid = selection_fid(models_root, train_images[validation])
    rows = []
    for eta in etas:
        for count in steps:
            samples = generate_many(sampling, sessions, images, seed, steps=count, eta=eta)
            rows.append({"eta": eta, "steps": count, "fid_vs_validation": fid(samples)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def plot(rows: list[dict], images: int, version: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for eta in sorted({row["eta"] for row in rows}):
        line = [row for row in rows if row["eta"] == eta]
        label = "eta 0: DDIM, deterministic" if eta == 0 else f"eta {eta:g}" + (": DDPM, stochastic" if eta == 1 else "")
        ax.plot([row["steps"] for row in line], [row["fid_vs_validation"] for row in line], marker="o", label=label)
    ax.set(xscale="log", xlabel="sampling steps", ylabel="FID against the validation slice (lower is better)",
           title=f"Diffusion (version {version}): {images} samples a point")
    ax.legend()
    return save(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50, 100, 200])
    parser.add_argument("--eta", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--images", type=int, default=1000, help="samples per point")
    parser.add_argument("--seed", type=int, default=1, help="differs from the card's evaluation seed (0)")
    args = parser.parse_args(argv)
    models_root = args.models_dir or models_dir()
    rows = sweep(models_root, args.steps, args.eta, args.images, args.seed)
    out = reports_dir(NAME)
    version = layout.newest(models_root / NAME).name
    (out / "eta-sweep.json").write_text(json.dumps({"images": args.images, "seed": args.seed, "version": version,
                                                    "rows": rows}, indent=2))
    print(f"wrote {out / 'eta-sweep.json'} and {plot(rows, args.images, version, out / 'eta-sweep.png')}")


if __name__ == "__main__":
    main()
