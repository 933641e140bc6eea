"""Report figures (PNG under ``reports/``) shared by the model families."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def reports_dir(name: str) -> Path:
    path = Path(os.environ.get("ZOOSERVE_REPORTS_DIR", "reports")) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str, unit: str) -> Path:
    """Scatter of predictions against ground truth with the identity line."""
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.scatter(y_true, y_pred, s=3, alpha=0.3)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1)
    ax.set(xlabel=f"true ({unit})", ylabel=f"predicted ({unit})", title=title)
    return save(fig, path)


def confusion_matrix_plot(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    """Counts per (true, predicted) cell; the diagonal is what the model got right."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(labels), 0.8 + 0.5 * len(labels)), dpi=110)
    image = ax.imshow(np.log1p(matrix), cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                color="white" if matrix[row, col] > matrix.max() / 2 else "black")
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return save(fig, path)


def roc_plot(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110)
    ax.plot(fpr, tpr, label=f"AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    return save(fig, path)


def forecasts(months: list[str], actual: np.ndarray, start: int, predicted: dict[str, np.ndarray], path: Path,
              title: str, unit: str, band: tuple[str, np.ndarray] | None = None) -> Path:
    """The whole series, the forecast period shaded from ``start`` on, and each model's forecast;
    ``band``: a label and [low, high] per month (float [n, 2]), drawn around the first forecast."""
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    steps = np.arange(len(actual))
    ax.axvspan(start, len(actual) - 1, color="0.92", label="test period")
    if band is not None:  # in the first forecast's colour, C0: the actual line's fixed colour takes none
        label, bounds = band
        ax.fill_between(steps[start:start + len(bounds)], bounds[:, 0], bounds[:, 1], color="C0", alpha=0.3,
                        linewidth=0, label=label)
    ax.plot(steps, actual, color="black", linewidth=1.5, label="actual")
    for name, values in predicted.items():
        ax.plot(steps[start:start + len(values)], values, linewidth=1.2, label=name)
    years = steps[::12]
    ax.set_xticks(years, [months[i][:4] for i in years])
    ax.set(ylabel=unit, title=title)
    ax.legend(loc="upper left")
    return save(fig, path)


def reliability_diagram(before: dict, after: dict, temperature: float, path: Path, title: str) -> Path:
    """Accuracy against confidence per bin, before and after temperature scaling (the diagonal is calibrated)."""
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for label, bins, marker in ((f"raw (ECE {before['ece']:.4f})", before, "o"),
                                (f"T = {temperature:.2f} (ECE {after['ece']:.4f})", after, "s")):
        shown = np.asarray(bins["counts"]) > 0
        ax.plot(np.asarray(bins["confidence"])[shown], np.asarray(bins["accuracy"])[shown], marker=marker,
                label=label)
    ax.set(xlabel="confidence (top class probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(loc="upper left")
    return save(fig, path)


def learning_curves(card: dict, path: Path) -> Path:
    """A trained network's curve from its card: training and validation loss per epoch (left) and
    the score that chose the epoch (right); an ensemble draws each member. A validation loss that
    turns up while the training loss falls is over-fitting; both flat and high is under-fitting."""
    runs = ([card["validation"]["history"]] if "history" in card.get("validation", {})
            else [member["history"] for member in card.get("members", [])])
    score = next((key[5:] for key in card.get("validation", {}) if key.startswith("best_") and key != "best_epoch"),
                 "validation MAPE")
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    for number, run in enumerate(runs):
        epochs = [epoch["epoch"] for epoch in run]
        label = (lambda kind: kind if number == 0 else None)
        loss_ax.plot(epochs, [epoch["train_loss"] for epoch in run], color="tab:blue", label=label("training"))
        if "val_loss" in run[0]:
            loss_ax.plot(epochs, [epoch["val_loss"] for epoch in run], color="tab:orange", linestyle="--",
                         label=label("validation"))
        score_ax.plot(epochs, [epoch["val_score"] for epoch in run], color="tab:green")
    best = card.get("validation", {}).get("best_epoch")
    if best:
        score_ax.axvline(best, color="grey", linewidth=0.8, linestyle=":")
    loss_ax.set(xlabel="epoch", ylabel="loss", title=f"{card['name']} ({card['profile']}): loss")
    loss_ax.legend()
    score_ax.set(xlabel="epoch", ylabel=score.replace("_", " "), title="validation score (dotted: epoch kept)")
    return save(fig, path)


def size_curve(card: dict, path: Path) -> Path:
    """RMSE on the rows fitted and on the held-out fold against training-set size, with the
    folds' standard deviation as error bars (the card's ``learning_curve_by_size``)."""
    curve = card["learning_curve_by_size"]
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=110)
    for kind, label, style in (("train", "rows fitted", "-"), ("val", "held-out fold", "--")):
        ax.errorbar(curve["training_rows"], curve[f"{kind}_rmse_mean"], yerr=curve[f"{kind}_rmse_std"],
                    label=label, linestyle=style, marker="o", capsize=3)
    ax.set(xscale="log", xlabel="training rows", ylabel="RMSE ($100k)",
           title=f"{card['name']} ({card['profile']}): {curve['folds']} folds")
    ax.set_xticks(curve["training_rows"], [f"{rows:,}" for rows in curve["training_rows"]])
    ax.minorticks_off()
    ax.legend()
    return save(fig, path)
