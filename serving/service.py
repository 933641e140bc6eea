"""The ZooServe BentoML service: thin endpoints over the model registry.

Each endpoint validates (pydantic), shapes the input tensor, calls the registry and shapes the
answer; everything model-specific comes from the model card, nothing from training code.
"""

from __future__ import annotations

import bentoml
import numpy as np

from .errors import ErrorShapeMiddleware, error_response, field_error
from .forecast import recursive_forecast, session_step
from .registry import ModelNotLoaded, Registry, verify_models
from .schemas import ForecastRequest, ForecastResponse, House, HousePrice, HousePriceRequest, HousePriceResponse
from .settings import Settings

HOUSE_PRICE_MODELS = {"gbm": "house-price-gbm", "mlp": "house-price-mlp"}
PASSENGERS_MODEL = "passengers"

# A failure inside a worker's __init__ leaves `bentoml serve` running with no worker; checking the
# cards and graph hashes here, when the server process loads this module, stops start-up instead.
verify_models(Settings.from_env())


@bentoml.service(name="zooserve", traffic={"timeout": 30})
class ZooServe:
    def __init__(self) -> None:
        self.registry = Registry(Settings.from_env())

    def __is_ready__(self) -> bool:
        # __init__ returns only after every model loaded and answered its warm-up inference.
        return bool(self.registry.models)

    @bentoml.api(route="/house-price/predict", input_spec=HousePriceRequest)
    def house_price_predict(self, houses: list[House], model: str = "gbm") -> HousePriceResponse:
        """Median house value of California block groups (1 to 1,000 per request)."""
        try:
            loaded = self.registry.get(HOUSE_PRICE_MODELS[model])
        except ModelNotLoaded as error:
            return error_response(503, str(error))
        spec = loaded.input_spec()[0]
        order = loaded.card["preprocessing"]["feature_order"]
        features = np.array([[getattr(house, name) for name in order] for house in houses], dtype=spec["dtype"])
        values = loaded.run({spec["name"]: features})[0].ravel()
        per_unit = loaded.card["preprocessing"]["price_usd_per_unit"]
        return HousePriceResponse(
            predictions=[HousePrice(value=float(v), price_usd=round(float(v) * per_unit, 2)) for v in values],
            model=loaded.summary,
        )

    @bentoml.api(route="/passengers/forecast", input_spec=ForecastRequest)
    def passengers_forecast(self, history: list[float] | None = None, horizon: int = 12) -> ForecastResponse:
        """Monthly airline passengers (thousands) for the next 1 to 36 months, predictions fed back."""
        try:
            loaded = self.registry.get(PASSENGERS_MODEL)
        except ModelNotLoaded as error:
            return error_response(503, str(error))
        values = loaded.card["series"]["values"] if history is None else history
        step = session_step(loaded.sessions["model"], loaded.input_spec()[0]["name"])
        try:
            forecast = recursive_forecast(step, values, loaded.card["preprocessing"]["window"], horizon)
        except ValueError as error:
            return field_error("history", str(error), "too_short")
        if not np.isfinite(forecast).all():  # positive and finite, yet beyond float32 once logged
            return field_error("history", "values too extreme to forecast", "value_error")
        return ForecastResponse(forecast=forecast.tolist(), model=loaded.summary)


ZooServe.add_asgi_middleware(ErrorShapeMiddleware)
