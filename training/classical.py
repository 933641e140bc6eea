"""Classical digit classifiers (the notes' section 1.2), served next to the CNN.

Logistic regression, k-nearest neighbours after a PCA, a decision tree and a random forest, each
a scikit-learn pipeline on the 784 pixels of a digit normalized exactly like the CNN's input
(``mnist.normalize``), so ``/digits/classify`` serves them through the same upload
preprocessing, its input flattened to the graph's (N, 784). Hyperparameters are chosen by 5-fold
cross-validation (error rate) on a subsample of the training split, as the notes do for the
forest's ``n_estimators`` and ``max_depth``; the chosen model is then fitted on the whole
training split (the 5,000-image validation slice of ``mnist-cnn`` stays out). The one export step
converts the pipeline with skl2onnx (``label`` and ``probabilities``), checks its parity and
computes the card's metrics by running the graph on the 10,000 test digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.tree import DecisionTreeClassifier

from serving.inference.images import MNIST_MEAN, MNIST_STD

from . import drift, plots
from .data import mnist_arrays
from .export import Graph, Sessions, Stopwatch, sklearn_classifier_writer
from .mnist import LABELS, VALIDATION, evaluate_digits, normalize, validation_split
from .template import Recipe
from .tuning import cross_validate, error_rate

INPUT, PIXELS = "image", 28 * 28
EVAL_CHUNK = 500  # test rows per graph call: kNN's graph holds a (rows x training points) distance matrix


@dataclass(frozen=True)
class Profile:
    train_images: int | None  # None: the whole training split, 55,000 digits
    cv_images: int  # the subsample the grid is searched on
    folds: int = 5


PROFILES = {
    "quick": Profile(train_images=10_000, cv_images=2_000),
    "full": Profile(train_images=None, cv_images=10_000),
}


@dataclass(frozen=True)
class Family:
    """One classical classifier: its pipeline for some hyperparameters, and the grid to search."""

    name: str
    build: Callable[..., Pipeline]
    grid: tuple[dict[str, Any], ...]
    # Rows allowed outside the parity tolerance. Trees: skl2onnx stores the float64 split thresholds
    # as float32, so a pixel value between the two roundings takes the other branch (1 row in 2,000
    # measured for the quick forest), as for the house-price trees.
    max_exceed_fraction: float = 0.0


def _logistic(C: float, seed: int) -> Pipeline:
    return make_pipeline(LogisticRegression(C=C, max_iter=300, random_state=seed))


def _knn(k: int, components: int, seed: int) -> Pipeline:
    return make_pipeline(PCA(components, random_state=seed), KNeighborsClassifier(k, n_jobs=-1))


def _tree(max_depth: int | None, seed: int) -> Pipeline:
    return make_pipeline(DecisionTreeClassifier(max_depth=max_depth, random_state=seed))


def _forest(n_estimators: int, max_depth: int | None, seed: int) -> Pipeline:
    return make_pipeline(RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, n_jobs=-1,
                                                random_state=seed))


FAMILIES = {family.name: family for family in (
    Family("mnist-logreg", _logistic, ({"C": 0.01}, {"C": 0.1}, {"C": 1.0})),
    Family("mnist-knn", _knn, tuple({"k": k, "components": 50} for k in (1, 3, 5))),
    Family("mnist-tree", _tree, tuple({"max_depth": depth} for depth in (10, 15, 20)), max_exceed_fraction=0.001),
    Family("mnist-forest", _forest, tuple({"n_estimators": trees, "max_depth": depth}
                                          for trees in (50, 100) for depth in (10, 20)), max_exceed_fraction=0.001),
)}


def flat(images_uint8: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784), normalized like the CNN's input."""
    return normalize(images_uint8).reshape(len(images_uint8), PIXELS)


def graph_probabilities(session) -> Callable[[np.ndarray], np.ndarray]:
    """Normalized (N, 1, 28, 28) digits -> (N, 10) probabilities through the exported graph."""
    def probabilities(batch: np.ndarray) -> np.ndarray:
        rows = batch.reshape(len(batch), PIXELS)
        return np.concatenate([session.run(["probabilities"], {INPUT: rows[start:start + EVAL_CHUNK]})[0]
                               for start in range(0, len(rows), EVAL_CHUNK)])
    return probabilities


class ClassicalRecipe(Recipe[Profile]):
    """One of ``FAMILIES``: its grid searched by cross-validation on a subsample of the training
    split, the best refitted on all of it; ``recipe(family)`` makes the family's recipe."""

    task, profiles = "image-classification", PROFILES
    family: ClassVar[Family]

    def load(self) -> None:
        images, labels = mnist_arrays(train=True)
        _, train_idx = validation_split(len(labels), self.run.limit or self.config.train_images)
        self.x, self.y = flat(images[train_idx]), labels[train_idx]
        self.test_images, self.test_labels = mnist_arrays(train=False)

    def learn(self) -> tuple[Pipeline, Stopwatch]:
        family, config, seed, x, y = self.family, self.config, self.run.seed, self.x, self.y
        self.cv = np.random.default_rng(seed).choice(len(y), min(config.cv_images, len(y)), replace=False)
        with Stopwatch() as watch:
            self.best, self.cross_validation = cross_validate(
                list(family.grid),
                lambda params, xf, yf, xv, _yv: family.build(**params, seed=seed).fit(xf, yf).predict(xv),
                x[self.cv], y[self.cv], folds=config.folds, seed=seed, desc=f"{self.name} cv",
                error=("error_rate", error_rate))
            model = family.build(**self.best, seed=seed).fit(x, y)
        return model, watch

    def graphs(self, model: Pipeline) -> dict[str, Graph]:
        return {"model": Graph(
            file="model.onnx",
            write=sklearn_classifier_writer(model, INPUT, PIXELS, len(LABELS)),
            reference=lambda inputs: [model.predict(inputs[INPUT]), model.predict_proba(inputs[INPUT])],
            parity_inputs={INPUT: flat(self.test_images[:2000])},
            units={INPUT: "784 pixels, row by row, normalized: (x/255 - mean) / std", "label": "the digit",
                   "probabilities": "P(0) ... P(9)"},
            max_exceed_fraction=self.family.max_exceed_fraction,
        )}

    def drift_reference(self) -> dict[str, Any]:
        return drift.label_reference(self.y, LABELS)

    def card(self, model: Pipeline) -> dict[str, Any]:
        return {
            "data": {"source": "MNIST", "train": len(self.y), "validation": VALIDATION, "test": len(self.test_labels),
                     "cross_validation_subsample": len(self.cv)},
            "preprocessing": {"mean": MNIST_MEAN, "std": MNIST_STD, "size": 28,
                              "upload": "serving.inference.images.to_mnist",
                              "flatten": "the 28x28 input, row by row, into 784 values"},
            "labels": LABELS,
            "hyperparameters": {"pipeline": [type(step).__name__ for step in model.named_steps.values()],
                                **self.best},
            "cross_validation": self.cross_validation,
        }

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        return evaluate_digits(graph_probabilities(sessions["model"]), self.test_images, self.test_labels,
                               plots.reports_dir(self.name), self.name)


def recipe(family: Family) -> type[ClassicalRecipe]:
    return type(f"ClassicalRecipe[{family.name}]", (ClassicalRecipe,), {"name": family.name, "family": family})


RECIPES = {name: recipe(family) for name, family in FAMILIES.items()}
