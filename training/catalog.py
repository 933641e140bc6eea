"""Every model ``python -m training`` builds: its name and its family's recipe, in the order
``all`` trains them."""

from __future__ import annotations

from typing import Any

from .template import Recipe, train as train_recipe

# Trained by `python -m training all` and by name, not by a first run: no endpoint waits for them.
BEYOND_FIRST_RUN = ("gan-wgan-gp",)


def recipes() -> dict[str, type[Recipe]]:
    # Imported here: each family imports torch, and the CLI's --help should not wait for it.
    from . import classical, diffusion, gan, house_price, mnist, passengers, transfer, vae

    return {
        "house-price-gbm": house_price.GbmRecipe,
        "house-price-mlp": house_price.MlpRecipe,
        "mnist-cnn": mnist.DigitRecipe,  # before the generative models: their FID is measured with it
        **classical.RECIPES,  # mnist-logreg, mnist-knn, mnist-tree, mnist-forest
        "transfer-cnn": transfer.TransferRecipe,
        "passengers": passengers.ForecastRecipe,
        "vae": vae.VaeRecipe,
        "gan": gan.GanRecipe,
        "diffusion": diffusion.DiffusionRecipe,
        # Last: the class-conditional twins only draw a requested digit for /generate/vae and /generate/gan.
        "vae-conditional": vae.ConditionalVaeRecipe,
        "gan-conditional": gan.ConditionalGanRecipe,
        # The course's comparison with the GAN: what `make train` adds, not what a first run needs.
        "gan-wgan-gp": gan.WganGpRecipe,
    }


def train(name: str, profile: str = "full", **settings: Any) -> dict[str, Any]:
    """Train, export and card the model ``name``: ``template.train`` with its family's recipe."""
    return train_recipe(recipes()[name], profile, **settings)
