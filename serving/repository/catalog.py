"""Which model each endpoint serves: the names the endpoints and the OpenAPI document share."""

from __future__ import annotations

HOUSE_PRICE_MODELS = {"gbm": "house-price-gbm", "mlp": "house-price-mlp"}
PASSENGERS_MODEL = "passengers"
DIGITS_MODEL, IMAGES_MODEL = "mnist-cnn", "transfer-cnn"
# What /digits/classify's `model` may name: the CNN (the default) and the classical classifiers.
CLASSICAL_DIGIT_MODELS = ("mnist-logreg", "mnist-knn", "mnist-tree", "mnist-forest")
DIGIT_MODELS = (DIGITS_MODEL, *CLASSICAL_DIGIT_MODELS)
BATCHED_MODELS = (DIGITS_MODEL, IMAGES_MODEL)
DIFFUSION_MODEL = "diffusion"
# /generate/{family}: the model each family's endpoint serves (wgan-gp: the GAN trained with the
# course's Wasserstein objective, beside the non-saturating one).
FAMILY_MODELS = {"vae": "vae", "gan": "gan", "wgan-gp": "gan-wgan-gp", DIFFUSION_MODEL: DIFFUSION_MODEL}
GENERATOR_FAMILIES = tuple(FAMILY_MODELS)
# The VAE and the GAN are unconditional; a requested digit is drawn by their class-conditional twin.
CONDITIONAL_TWINS = {"vae": "vae-conditional", "gan": "gan-conditional"}
GENERATIVE_MODELS = (*FAMILY_MODELS.values(), *CONDITIONAL_TWINS.values())
# Every name a REST endpoint serves: a model added from any ONNX file (``serving.add``) takes another.
SERVED_BY_ENDPOINTS = (*HOUSE_PRICE_MODELS.values(), PASSENGERS_MODEL, *DIGIT_MODELS, IMAGES_MODEL, *GENERATIVE_MODELS)


def generator_for(family: str, digit: int | None) -> str:
    """The model that answers a VAE or GAN request: the family's own, or its twin for a digit."""
    return FAMILY_MODELS[family] if digit is None else CONDITIONAL_TWINS[family]
