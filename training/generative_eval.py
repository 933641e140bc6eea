"""How every generative model is scored, the same way for all three so users can compare them.

FID in the feature space of the project's own ``mnist-cnn`` (its 256-d penultimate layer; the
usual way to score MNIST generators without Inception weights) between generated digits and MNIST
test images, next to its floor: the 5,000-image validation slice, which neither ``mnist-cnn`` nor
any generator trains on, against the same test set. FID is biased by sample size, so every FID
compares equal numbers of images (``matched_fid``: at most 5,000 a side, a few random draws,
their mean and a 95% interval). KID, whose estimate is unbiased, and the classes the classifier
reads in the samples (mode collapse shows there) come beside it, and what the classifier thinks
of the samples: its mean top-class probability and, for conditional models, how often it reads
the requested digit. Samples come from the exported graphs through ``serving.inference.generation``, the
code the endpoints run.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import onnxruntime as ort

from serving.inference.generation import generate
from serving.inference.images import grid, png
from serving.inference.postprocess import softmax
from serving.repository import layout
from serving.repository.card import DDIMSampling, LatentSampling

from .data import mnist_arrays
from .export import cpu_session
from .mnist import NAME as FEATURE_MODEL, logits_and_features, normalize, validation_split

MATCHED_IMAGES = 5_000  # the validation slice's size: the most a clean floor can compare
DRAWS = 5
T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571}  # Student's t, 97.5%, by draws (n - 1 dof)
KID_SUBSET, KID_SUBSETS = 1_000, 10
CHUNK = 500  # images generated per call: bounded memory, and each chunk has its own seed
GRID_IMAGES = 100


class FeatureModelMissing(RuntimeError):
    """FID needs mnist-cnn in the models directory the generative model is exported to."""


def feature_session(models_root: Path) -> ort.InferenceSession:
    path = layout.newest(models_root / FEATURE_MODEL) / "model.onnx"
    if not path.is_file():
        raise FeatureModelMissing(
            f"FID is measured with the {FEATURE_MODEL} classifier, expected at {path.resolve()}; train it "
            f"first (`python -m training {FEATURE_MODEL} --models-dir {models_root}`) or copy it there")
    return cpu_session(path)


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared Fréchet distance between two Gaussians: |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^1/2).

    tr((C1 C2)^1/2) is the sum of the square roots of the eigenvalues of C1^1/2 C2 C1^1/2, a
    symmetric PSD matrix: eigen-decompositions stay exact where a general matrix square root
    struggles (rank-deficient covariances from fewer samples than feature dimensions).
    """
    values, vectors = np.linalg.eigh(cov1)
    root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root @ cov2 @ root)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.sqrt(np.clip(inner, 0.0, None)).sum())


def selection_fid(models_root: Path, reference_images: np.ndarray) -> Callable[[np.ndarray], float]:
    """FID of uint8 digits against ``reference_images`` (the validation slice: choosing an epoch
    must not look at the test set), the features' statistics of the reference computed once."""
    session = feature_session(models_root)
    reference = gaussian_statistics(logits_and_features(session, normalize(reference_images))[1])
    return lambda images: frechet_distance(*gaussian_statistics(logits_and_features(session, normalize(images))[1]),
                                           *reference)


def matched_fid(features: np.ndarray, reference: np.ndarray, size: int, draws: int = DRAWS,
                seed: int = 0) -> dict[str, Any]:
    """FID of ``size`` rows of ``features`` against ``size`` rows of ``reference``, each draw a new
    random subset of either side that has more: the mean over ``draws`` and its 95% interval."""
    values = []
    for draw in range(draws):
        rng = np.random.default_rng(seed + draw)
        ours = features[rng.choice(len(features), size, replace=False)]
        theirs = reference[rng.choice(len(reference), size, replace=False)]
        values.append(frechet_distance(*gaussian_statistics(ours), *gaussian_statistics(theirs)))
    mean, half = float(np.mean(values)), T_975[draws] * float(np.std(values, ddof=1)) / np.sqrt(draws)
    return {"mean": mean, "interval_95": [float(mean - half), float(mean + half)], "draws": values,
            "images_a_side": size}


def kid(features: np.ndarray, reference: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Kernel inception distance (Binkowski et al., 2018) in the same features: the unbiased MMD^2
    with the cubic kernel (x.y / d + 1)^3, averaged over subsets of at most 1,000 a side."""
    size, dim = min(KID_SUBSET, len(features), len(reference)), features.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(KID_SUBSETS):
        x = np.asarray(features[rng.choice(len(features), size, replace=False)], np.float64)
        y = np.asarray(reference[rng.choice(len(reference), size, replace=False)], np.float64)
        kxx, kyy, kxy = ((x @ x.T / dim + 1) ** 3, (y @ y.T / dim + 1) ** 3, (x @ y.T / dim + 1) ** 3)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (size * (size - 1))
        values.append(within - 2 * kxy.mean())
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "subset": size}


@lru_cache(maxsize=4)
def _reference(feature_graph: str) -> dict[str, np.ndarray]:
    """The features of the test set and of the validation slice, computed once per feature graph."""
    session = cpu_session(Path(feature_graph))
    test_images, _ = mnist_arrays(train=False)
    train_images, _ = mnist_arrays(train=True)
    validation = train_images[validation_split(len(train_images), None)[0]]
    return {"test": logits_and_features(session, normalize(test_images))[1],
            "validation": logits_and_features(session, normalize(validation))[1]}


@lru_cache(maxsize=8)
def _floor(feature_graph: str, size: int) -> dict[str, Any]:
    """The clean floor at ``size`` images a side: the validation slice against the test set."""
    reference = _reference(feature_graph)
    return {"fid": matched_fid(reference["validation"], reference["test"], size),
            "kid": kid(reference["validation"], reference["test"])}


def classifier_score(probabilities: np.ndarray) -> float:
    """The Inception score with the digit classifier: exp E[KL(p(y|x) || p(y))], from 1 (every sample
    read alike, or none read with confidence) to 10 (each confidently one digit, all digits equally
    often). The mean top-class probability alone cannot tell confident reads of noise from digits."""
    marginal = probabilities.mean(axis=0)
    kl = (probabilities * (np.log(probabilities + 1e-12) - np.log(marginal + 1e-12))).sum(axis=1)
    return float(np.exp(kl.mean()))


def digit_counts(images: int) -> np.ndarray:
    """Samples per digit for a conditional model: the training set's class frequencies (the data's
    own p(y); a uniform 10% each adds about 0.05 to FID against the test set), rounded by largest
    remainder so that they add up to ``images``."""
    return proportional_counts(digit_shares(), images)


def digit_shares() -> np.ndarray:
    """Each digit's share of the MNIST training set."""
    _, labels = mnist_arrays(train=True)
    return np.bincount(labels, minlength=10) / len(labels)


def proportional_counts(shares: np.ndarray, images: int) -> np.ndarray:
    """``images`` split by ``shares`` (adding up to 1), rounded by largest remainder."""
    share = shares * images
    counts = np.floor(share).astype(int)
    counts[np.argsort(counts - share)[:images - counts.sum()]] += 1
    return counts


Sampling = LatentSampling | DDIMSampling
Sessions = Mapping[str, ort.InferenceSession]


def generate_many(sampling: Sampling, sessions: Sessions, total: int, seed: int, **knobs: Any) -> np.ndarray:
    """``total`` digits drawn in chunks (seed + each chunk's start), with ``generate``'s knobs."""
    return np.concatenate([generate(sampling, sessions, seed + start, min(CHUNK, total - start), **knobs)
                           for start in range(0, total, CHUNK)])


def conditional_samples(sampling: Sampling, sessions: Sessions, images: int, seed: int,
                        **knobs: Any) -> tuple[np.ndarray, np.ndarray]:
    """``images`` digits requested as often as ``digit_counts`` says, and the digit each was asked for."""
    counts = digit_counts(images)
    samples = np.concatenate([generate_many(sampling, sessions, int(counts[digit]), seed + 100_000 * digit,
                                             digit=digit, **knobs) for digit in range(10)])
    return samples, np.repeat(np.arange(10), counts)


def _quality(features: np.ndarray, probabilities: np.ndarray, feature_graph: str, size: int) -> dict[str, Any]:
    """FID (matched, with its interval), KID, and what the classifier reads in the samples."""
    test = _reference(feature_graph)["test"]
    fid = matched_fid(features, test, size)
    return {"fid": fid["mean"], "fid_interval_95": fid["interval_95"], "fid_draws": fid["draws"],
            "fid_images_a_side": size, "kid": kid(features, test)["mean"],
            "mean_top_class_probability": float(probabilities.max(axis=1).mean()),
            "classifier_score": classifier_score(probabilities),
            "classes_read": {str(d): int(n) for d, n in enumerate(np.bincount(probabilities.argmax(axis=1),
                                                                               minlength=10))}}


def evaluate_generator(models_root: Path, sampling: Sampling, sessions: Sessions, images: int, report_dir: Path,
                       title: str, conditional: bool = False, seed: int = 0, **knobs: Any) -> dict[str, Any]:
    """The card's quality metrics for ``images`` samples, and ``report_dir/samples.png``.

    A conditional model gets each digit as often as the training set has it (``digit_counts``);
    those samples also measure how often the classifier reads the requested digit, and a
    diffusion model is scored unconditionally too (its null label: ``unconditional``).
    """
    session = feature_session(models_root)
    feature_version = layout.newest(models_root / FEATURE_MODEL)
    feature_card = json.loads((feature_version / layout.CARD).read_text())
    feature_graph = str((feature_version / "model.onnx").resolve())
    if conditional:
        samples, requested = conditional_samples(sampling, sessions, images, seed, **knobs)
    else:
        samples = generate_many(sampling, sessions, images, seed, **knobs)
    logits, features = logits_and_features(session, normalize(samples))
    probabilities = softmax(logits)
    size = min(MATCHED_IMAGES, len(samples))
    floor = _floor(feature_graph, size)
    metrics: dict[str, Any] = {
        **_quality(features, probabilities, feature_graph, size),
        "fid_floor_validation_vs_test": floor["fid"]["mean"],
        "fid_floor_interval_95": floor["fid"]["interval_95"],
        "kid_floor_validation_vs_test": floor["kid"]["mean"],
        "generated_images": len(samples),
        "feature_model": {"name": FEATURE_MODEL, "version": feature_card["version"],
                          "sha256": feature_card["graphs"]["model"]["sha256"], "layer": "features"},
        "sampling": {"seed": seed, **knobs},
    }
    metrics["fid_over_floor"] = metrics["fid"] / metrics["fid_floor_validation_vs_test"]
    if conditional:
        correct = probabilities.argmax(axis=1) == requested
        metrics["conditional_accuracy"] = float(correct.mean())
        metrics["conditional_accuracy_per_digit"] = {str(d): float(correct[requested == d].mean()) for d in range(10)}
        counts = np.bincount(requested, minlength=10)
        metrics["samples_per_digit"] = {str(d): int(counts[d]) for d in range(10)}
        if isinstance(sampling, DDIMSampling):
            # Like for like with the unconditional generators: the null label, no guidance (a
            # conditional GAN or VAE has no null label: its unconditional twin is another model).
            unconditional = generate_many(sampling, sessions, size, seed + 1_000_000, **knobs)
            unconditional_logits, unconditional_features = logits_and_features(session, normalize(unconditional))
            metrics["unconditional"] = _quality(unconditional_features, softmax(unconditional_logits), feature_graph,
                                                size)
        rows = min(10, int(counts.min()))  # one column per digit
        shown = np.stack([samples[requested == d][:rows] for d in range(10)], axis=1).reshape(-1, 28, 28)
    else:
        shown = samples[:GRID_IMAGES]
    path = report_dir / "samples.png"
    path.write_bytes(png(grid(shown, columns=10)))
    metrics["samples_png"] = str(path)
    print(f"{title}: FID {metrics['fid']:.2f} (floor {metrics['fid_floor_validation_vs_test']:.2f}) "
          f"at {size} images a side")
    return metrics
