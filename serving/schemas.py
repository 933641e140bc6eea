"""Pydantic schemas of every request and response; the OpenAPI page is generated from them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Strict: "8.3" or true is a client bug to report, not a value to coerce. NaN/Infinity rejected.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ModelInfo(BaseModel):
    name: str
    version: str
    sha256: str


class House(BaseModel):
    """One California census block group, in the units of scikit-learn's dataset."""

    model_config = STRICT
    MedInc: float = Field(ge=0, le=100, description="median income, $10k")
    HouseAge: float = Field(ge=0, le=200, description="median house age, years")
    AveRooms: float = Field(gt=0, le=1000, description="average rooms per household")
    AveBedrms: float = Field(ge=0, le=1000, description="average bedrooms per household")
    Population: float = Field(ge=0, le=1_000_000, description="block group population")
    AveOccup: float = Field(gt=0, le=10_000, description="average household members")
    Latitude: float = Field(ge=32.0, le=42.5, description="degrees north, within California")
    Longitude: float = Field(ge=-124.8, le=-114.0, description="degrees east, within California")


EXAMPLE_HOUSE = House(MedInc=8.3252, HouseAge=41.0, AveRooms=6.984, AveBedrms=1.024, Population=322.0,
                      AveOccup=2.556, Latitude=37.88, Longitude=-122.23)


class HousePriceRequest(BaseModel):
    model_config = STRICT
    houses: list[House] = Field(min_length=1, max_length=1000, examples=[[EXAMPLE_HOUSE.model_dump()]])
    model: Literal["gbm", "mlp"] = Field("gbm", description="gbm: gradient-boosted trees; mlp: neural net")


class HousePrice(BaseModel):
    value: float = Field(description="predicted median house value, $100k")
    price_usd: float


class HousePriceResponse(BaseModel):
    predictions: list[HousePrice]
    model: ModelInfo
