"""``vae``: a convolutional variational autoencoder trained on the ELBO (the seed's 5.2).

Gaussian encoder q(z|x), standard-normal prior while training, Bernoulli decoder p(x|z) over
gray levels in [0, 1]. Unconditional: a digit cannot be requested. The trained VAE's codes do
not fill N(0, I): its aggregate posterior has clusters (one per digit style) and holes between
them, and prior draws that land in a hole decode to blends of two digits. So after training a
richer prior is fitted to the training images' codes (ex-post density estimation, Ghosh et al.,
2020): a full-covariance Gaussian mixture, its number of components chosen by the FID of its
samples on the validation slice. Three graphs: the decoder (``model``: latent -> pixel
probabilities), the encoder (``encoder``: image -> posterior mean and log-variance, for
interpolation between uploads) and the prior (``prior``: standard-normal noise -> latent point,
the first noise coordinate picking the component). The card reports the test set's
single-sample negative ELBO and its importance-weighted bound (Burda et al., 2016; k samples of
q per image) under both priors, in nats per image, computed on the graphs.

``vae-conditional`` is the conditional VAE (Sohn et al., 2015): encoder and decoder both see a
learned embedding of the digit, so the code keeps the style (slant, width, stroke) and the
decoder draws the requested digit in it. Its prior is fitted the same way, to the codes of all
training images whatever their digit (the code should not tell the digit: the label does), and
its graphs take ``digit`` beside ``image`` and ``z``; its bounds are of log p(x | digit), not
comparable with the unconditional VAE's, so the card leaves them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture
from torch import nn
from torch.nn import functional as F

from serving.inference.generation import to_uint8

from .export import Graph, Sessions, torch_graph
from .generative import (CLASSES, CONDITIONING, LABEL_FEATURES, LABEL_INPUT, Conditioning, Digits,
                         GenerativeProfile, GenerativeRecipe, cosine_decay, latent_sampling, selection_digits)
from .generative_eval import selection_fid
from .template import Cost, Learning

NAME = "vae"
VALUE_RANGE = (0.0, 1.0)
ELBO_SAMPLES_SEED = 0
SELECTION_IMAGES = 2000
PRIOR_INPUT = "noise"


@dataclass(frozen=True, kw_only=True)
class Profile(GenerativeProfile):
    latent_dim: int = 16
    cosine_decay: bool = False
    # Mixture sizes tried for the fitted prior; the one whose samples score the lowest validation FID serves.
    prior_components: tuple[int, ...] = (1, 10, 20, 40)
    importance_samples: int = 100  # k of the importance-weighted bound
    bound_images: int = 10_000  # test images it is computed on (k decoder calls each)


PROFILES = {
    # One epoch (about 40 s of training) keeps the first run's minutes where they were now that the
    # prior's fit and the bound add about 20 s; with the mixture prior its samples are read as digits
    # with mean top-class probability 0.86 (2 epochs: 0.88, and FID 3.6 instead of 7.8 at 1,000 a side).
    "quick": Profile(epochs=1, train_images=None, eval_images=1000, prior_components=(1, 10), bound_images=200),
    "full": Profile(epochs=30, train_images=None, eval_images=10_000, cosine_decay=True),
}


class Encoder(nn.Module):
    def __init__(self, latent_dim: int, label_features: int = 0) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),   # 14x14
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),  # 7x7
            nn.Flatten(),
        )
        self.condition = Conditioning(label_features)
        self.head = nn.Sequential(nn.Linear(64 * 7 * 7 + label_features, 256), nn.ReLU(),
                                  nn.Linear(256, 2 * latent_dim))

    def forward(self, image: torch.Tensor, digit: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.head(self.condition(self.conv(image), digit)).chunk(2, dim=1)
        return mean, log_var


class Decoder(nn.Module):
    def __init__(self, latent_dim: int, label_features: int = 0) -> None:
        super().__init__()
        self.condition = Conditioning(label_features)
        self.net = nn.Sequential(
            nn.Linear(latent_dim + label_features, 256), nn.ReLU(), nn.Linear(256, 64 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),  # 14x14
            nn.ConvTranspose2d(32, 1, 4, 2, 1),              # 28x28 logits
        )

    def forward(self, z: torch.Tensor, digit: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(self.condition(z, digit))
        return torch.sigmoid(logits), logits


class VAE(nn.Module):
    def __init__(self, latent_dim: int, conditional: bool = False) -> None:
        super().__init__()
        label_features = LABEL_FEATURES if conditional else 0
        self.encoder, self.decoder = Encoder(latent_dim, label_features), Decoder(latent_dim, label_features)

    def negative_elbo(self, image: torch.Tensor, digit: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-image -ELBO in nats: Bernoulli reconstruction loss plus KL(q(z|x) || N(0, I)) (given
        the digit, for the conditional VAE)."""
        mean, log_var = self.encoder(image, digit)
        noise = torch.randn(mean.shape, generator=generator)
        _, logits = self.decoder(mean + torch.exp(0.5 * log_var) * noise, digit)
        reconstruction = F.binary_cross_entropy_with_logits(logits, image, reduction="none").sum(dim=(1, 2, 3))
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)
        return reconstruction + kl


class MixturePrior(nn.Module):
    """Standard-normal noise (N, 1 + d) -> latent points (N, d) drawn from a Gaussian mixture.

    Phi(noise[:, 0]) is uniform on (0, 1) and picks the component whose cumulative weight it
    falls in; the other d coordinates, through that component's Cholesky factor, place the point.
    Deterministic in the noise, so one seed gives one point anywhere, as ``latents`` promises.
    """

    def __init__(self, mixture: GaussianMixture) -> None:
        super().__init__()
        # The last edge is above any u: every u lands in some component.
        edges = np.append(np.cumsum(mixture.weights_)[:-1], np.inf)
        self.register_buffer("edges", torch.tensor(edges, dtype=torch.float32))
        self.register_buffer("means", torch.tensor(mixture.means_, dtype=torch.float32))
        self.register_buffer("factors", torch.tensor(np.linalg.cholesky(mixture.covariances_), dtype=torch.float32))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        u = 0.5 * (1.0 + torch.erf(noise[:, 0] / math.sqrt(2.0)))
        component = (u[:, None] > self.edges[None]).sum(dim=1)
        return self.means[component] + (self.factors[component] @ noise[:, 1:, None]).squeeze(2)


def negative_elbo_numpy(mean: np.ndarray, log_var: np.ndarray, logits: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The same bound from graph outputs, in float64: what the card reports."""
    logits, image = logits.astype(np.float64), image.astype(np.float64)
    bce = np.maximum(logits, 0) - logits * image + np.log1p(np.exp(-np.abs(logits)))
    kl = 0.5 * (mean.astype(np.float64) ** 2 + np.exp(log_var) - 1.0 - log_var).sum(axis=1)
    return bce.sum(axis=(1, 2, 3)) + kl


def negative_elbo_on_test(sessions: Sessions, x_test: np.ndarray) -> dict[str, Any]:
    """Single-sample -ELBO of every test image through the exported encoder and decoder."""
    mean, log_var = sessions["encoder"].run(None, {"image": x_test})
    noise = np.random.default_rng(ELBO_SAMPLES_SEED).standard_normal(mean.shape, dtype=np.float32)
    _, logits = sessions["model"].run(None, {"z": mean + np.exp(0.5 * log_var) * noise})
    bound = negative_elbo_numpy(mean, log_var, logits, x_test)
    return {"test_negative_elbo_nats": float(bound.mean()), "test_negative_elbo_std": float(bound.std()),
            "test_images": len(x_test), "elbo_samples_per_image": 1}


def standard_normal_log_density(z: np.ndarray) -> np.ndarray:
    return -0.5 * (z ** 2).sum(axis=-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


def importance_weighted_bounds(sessions: Sessions, images: np.ndarray, k: int, mixture: GaussianMixture,
                               chunk: int = 50) -> dict[str, Any]:
    """-log p(x) bounded by k samples of q(z|x) per image (Burda et al., 2016), in nats per image:
    log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), with p(z) the trained N(0, I) and the fitted mixture
    (its density from the fitted parameters the prior graph holds; q and p(x|z) from the graphs).
    k = 1 is the ELBO; the bound tightens towards log p(x) as k grows."""
    rng = np.random.default_rng(ELBO_SAMPLES_SEED)
    bounds: dict[str, list[np.ndarray]] = {"standard_normal": [], "mixture": []}
    single = []  # the first sample alone: the ELBO on the same images, what the bound tightens
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk]
        mean, log_var = (v.astype(np.float64) for v in sessions["encoder"].run(None, {"image": x}))
        eps = rng.standard_normal((len(x), k, mean.shape[1]))
        z = mean[:, None] + np.exp(0.5 * log_var)[:, None] * eps
        _, logits = sessions["model"].run(None, {"z": z.reshape(-1, mean.shape[1]).astype(np.float32)})
        logits = logits.astype(np.float64).reshape(len(x), k, -1)
        pixels = x.reshape(len(x), 1, -1).astype(np.float64)
        log_likelihood = -(np.maximum(logits, 0) - logits * pixels + np.log1p(np.exp(-np.abs(logits)))).sum(axis=2)
        log_q = (-0.5 * eps ** 2 - 0.5 * log_var[:, None] - 0.5 * math.log(2 * math.pi)).sum(axis=2)
        priors = {"standard_normal": standard_normal_log_density(z),
                  "mixture": mixture.score_samples(z.reshape(-1, mean.shape[1])).reshape(len(x), k)}
        for name, log_prior in priors.items():
            bounds[name].append(math.log(k) - logsumexp(log_likelihood + log_prior - log_q, axis=1))
        single.append(-(log_likelihood + priors["standard_normal"] - log_q)[:, 0])
    return {"importance_samples": k, "images": len(images),
            "test_negative_elbo_nats_same_images": float(np.concatenate(single).mean()),
            **{f"test_negative_iw_bound_nats_{name}_prior": float(np.concatenate(values).mean())
               for name, values in bounds.items()}}


def fit_prior(model: VAE, digits: Digits, components: tuple[int, ...], seed: int, out_root: Path
              ) -> tuple[GaussianMixture, dict[str, Any]]:
    """The mixture prior over the training images' codes whose samples have the lowest FID against
    the validation slice (N(0, I), the trained prior, scored beside them). The codes are draws of
    q(z|x), one per image, not its means: in the dimensions the decoder ignores the means sit at 0
    while q spreads as wide as N(0, I), and a mixture fitted to means would give every real
    image's posterior an absurdly low prior density there (its bound would be off by thousands of nats)."""
    generator = torch.Generator().manual_seed(seed)
    conditional = model.decoder.condition.embedding is not None
    with torch.no_grad():
        posteriors = [model.encoder(x, y if conditional else None)
                      for x, y in zip(digits.x_train.split(1000), digits.y_train.split(1000))]
        codes = torch.cat([mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=generator)
                           for mean, log_var in posteriors]).numpy().astype(np.float64)
    score = selection_fid(out_root, to_uint8(digits.x_val.numpy(), VALUE_RANGE))
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal((SELECTION_IMAGES, 1 + codes.shape[1]),
                                                                      dtype=np.float32))
    digit = selection_digits(SELECTION_IMAGES) if conditional else None

    def fid_of(z: torch.Tensor) -> float:
        with torch.no_grad():
            return score(to_uint8(model.decoder(z, digit)[0].numpy(), VALUE_RANGE))

    fids = {"standard_normal": fid_of(noise[:, 1:])}
    mixtures = {}
    for count in components:
        mixtures[count] = GaussianMixture(count, covariance_type="full", random_state=seed).fit(codes)
        fids[f"mixture_{count}"] = fid_of(MixturePrior(mixtures[count])(noise))
    best = min(components, key=lambda count: fids[f"mixture_{count}"])
    return mixtures[best], {"kind": "gaussian mixture, full covariances, fitted to one draw of q(z|x) per "
                                    "training image", "components": best, "fitted_codes": len(codes),
                            "validation_fid_by_prior": fids, "selection_images": SELECTION_IMAGES}


class VaeRecipe(GenerativeRecipe):
    name, profiles, value_range, score = NAME, PROFILES, VALUE_RANGE, "best_negative_elbo_nats"
    score_is_validation_loss = True

    def told(self, digit: torch.Tensor) -> torch.Tensor | None:
        """What the networks are told of each image's digit."""
        return digit if self.conditional else None

    def network(self) -> VAE:
        return VAE(self.config.latent_dim, self.conditional)

    def learning(self, model: VAE) -> Learning:
        config = self.config
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        steps = config.epochs * (len(self.digits.x_train) // config.batch_size)
        return Learning(optimizer, cosine_decay(optimizer, steps, config.cosine_decay), threads=config.threads)

    def loss(self, model: VAE, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return model.negative_elbo(batch[0], self.told(batch[1])).mean()

    def validate(self, model: VAE) -> float:
        digits = self.digits
        return float(model.negative_elbo(digits.x_val, self.told(digits.y_val), torch.Generator().manual_seed(0)).mean())

    def learn(self) -> tuple[VAE, Cost]:
        """The network, then the mixture prior its samples are drawn from."""
        model, cost = super().learn()
        self.mixture, self.prior = fit_prior(model, self.digits, self.config.prior_components, self.run.seed,
                                             self.run.out_root)
        return model, cost

    def graphs(self, model: VAE) -> dict[str, Graph]:
        config, conditional = self.config, self.conditional
        z = np.random.default_rng(1).standard_normal((512, config.latent_dim), dtype=np.float32)
        test = self.digits.x_test[:512]
        # The conditional VAE's graphs take the digit too.
        digit = {LABEL_INPUT: np.random.default_rng(4).integers(0, CLASSES, 512).astype(np.int64)} if conditional else {}
        digit_unit = {LABEL_INPUT: "digit 0-9"} if conditional else {}
        noise = np.random.default_rng(3).standard_normal((512, 1 + config.latent_dim), dtype=np.float32)
        return {
            "model": torch_graph(model.decoder, "model.onnx", {"z": z, **digit}, ["image", "logits"],
                                 {"z": "latent, N(0, I) prior", **digit_unit, "image": "pixel probabilities in [0, 1]"}),
            "encoder": torch_graph(model.encoder, "encoder.onnx", {"image": test, **digit}, ["mean", "log_var"],
                                   {"image": "pixels in [0, 1]", **digit_unit, "mean": "posterior mean",
                                    "log_var": "posterior log-variance"}),
            "prior": torch_graph(MixturePrior(self.mixture), "prior.onnx", {PRIOR_INPUT: noise}, ["z"],
                                 {PRIOR_INPUT: "N(0, I); its first coordinate picks the component",
                                  "z": "a latent point drawn from the mixture"}),
        }

    def sampling(self) -> dict[str, Any]:
        latent_dim = self.config.latent_dim
        return {**latent_sampling(latent_dim, VALUE_RANGE, self.conditional),
                "prior": {"graph": "prior", "input": PRIOR_INPUT, "noise_dim": 1 + latent_dim}}

    def card(self, model: VAE) -> dict[str, Any]:
        config = self.config
        return {
            **super().card(model),
            "preprocessing": {"pixels": "x / 255 in [0, 1]", "likelihood": "Bernoulli over gray levels (not binarized)"},
            "hyperparameters": {"latent_dim": config.latent_dim, "epochs": config.epochs,
                                "batch_size": config.batch_size, "lr": config.lr,
                                "optimizer": "Adam, cosine decay" if config.cosine_decay else "Adam",
                                "parameters": sum(p.numel() for p in model.parameters())},
            "prior": self.prior,
        }

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        quality = super().evaluate(sessions)
        if self.conditional:  # bounds on log p(x | digit): not comparable with the unconditional VAE's
            return quality
        x_test = self.digits.x_test
        return {**quality, **negative_elbo_on_test(sessions, x_test),
                "importance_weighted": importance_weighted_bounds(
                    sessions, x_test[:self.config.bound_images], self.config.importance_samples, self.mixture)}


class ConditionalVaeRecipe(VaeRecipe):
    name, conditioning = f"{NAME}-conditional", CONDITIONING
