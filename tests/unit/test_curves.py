"""Every trained network's card holds its learning curve, and the docs' figures are drawn from them."""

from __future__ import annotations

import json

from serving.repository.layout import card_file
from training.curves import draw

NETWORKS = ("mnist-cnn", "transfer-cnn", "house-price-mlp", "passengers", "vae", "vae-conditional", "gan",
            "gan-conditional", "gan-wgan-gp", "diffusion")


def test_every_trained_network_keeps_its_training_and_validation_loss_per_epoch(trained_models):
    for name in NETWORKS:
        card = json.loads(card_file(trained_models, name).read_text())
        runs = [card["validation"]["history"]] if name != "passengers" else [m["history"] for m in card["members"]]
        for run in runs:
            assert run and all({"train_loss", "val_loss", "val_score"} <= set(epoch) for epoch in run), name


def test_the_figures_are_the_cards_curves(trained_models, tmp_path):
    drawn = {path.name for path in draw(trained_models, tmp_path)}
    assert {f"{name}.png" for name in NETWORKS} | {"house-price-gbm-by-size.png", "house-price-mlp-by-size.png"} \
        <= drawn
    assert "mnist-knn.png" not in drawn  # no epochs, no curve
    assert all((tmp_path / name).stat().st_size > 10_000 for name in drawn)
