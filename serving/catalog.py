"""Which model each endpoint serves: the names the endpoints and the OpenAPI document share."""

from __future__ import annotations

HOUSE_PRICE_MODELS = {"gbm": "house-price-gbm", "mlp": "house-price-mlp"}
PASSENGERS_MODEL = "passengers"
DIGITS_MODEL, IMAGES_MODEL = "mnist-cnn", "transfer-cnn"
BATCHED_MODELS = (DIGITS_MODEL, IMAGES_MODEL)
DIFFUSION_MODEL = "diffusion"
GENERATIVE_MODELS = ("vae", "gan", DIFFUSION_MODEL)
