"""Locust users, one class per endpoint family, with real payloads (see ``payloads.py``).

Each user offers a constant 5 requests/s (``constant_throughput``), so N users offer 5N
requests/s whatever the latency: the latency objectives hold at a fixed offered load. The
generator users ask for a few small grids at a fifth of that rate: one diffusion request is tens
of milliseconds of compute per step, as much as hundreds of classifications. Run one family
alone by naming its class, e.g. ``locust -f loadtests/locustfile.py DigitsUser``.
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant_throughput, task

from loadtests import payloads
from loadtests.run import RATE

# Read every payload now, when Locust imports this file, so the timed run sends from its first second.
HOUSES, DIGITS, PHOTOS = payloads.houses(), payloads.digit_pngs(), payloads.photos()
HISTORY, OIP_TENSOR = payloads.passenger_history(), payloads.oip_house_tensor()
AUTH = {"Authorization": f"Bearer {os.environ['ZOOSERVE_API_KEY']}"} if os.environ.get("ZOOSERVE_API_KEY") else {}


class ZooUser(FastHttpUser):
    abstract = True
    wait_time = constant_throughput(RATE)


class HousePriceUser(ZooUser):
    weight = 40

    def on_start(self) -> None:
        self.houses = itertools.cycle(HOUSES)

    @task
    def predict_one(self) -> None:
        self.client.post("/house-price/predict", json={"houses": [next(self.houses)]}, headers=AUTH,
                         name="/house-price/predict")


class UploadUser(ZooUser):
    """One picture per request, as a multipart ``image`` upload, cycling through ``pictures``."""

    abstract = True
    path, filename, content_type = "", "", ""
    pictures: list[bytes] = []

    def on_start(self) -> None:
        self.uploads = itertools.cycle(self.pictures)

    @task
    def classify(self) -> None:
        self.client.post(self.path, files={"image": (self.filename, next(self.uploads), self.content_type)},
                         headers=AUTH, name=self.path)


class DigitsUser(UploadUser):
    weight = 30
    path, filename, content_type, pictures = "/digits/classify", "digit.png", "image/png", DIGITS


class ImagesUser(UploadUser):
    fixed_count = 1  # one whatever the user count (its weight of 5 rounds to none below 20 users)
    path, filename, content_type, pictures = "/images/classify", "photo.jpg", "image/jpeg", PHOTOS


class ForecastUser(ZooUser):
    weight = 10

    @task
    def forecast_year(self) -> None:
        self.client.post("/passengers/forecast", json={"history": HISTORY, "horizon": 12},
                         headers=AUTH, name="/passengers/forecast")


class InferenceProtocolUser(ZooUser):
    weight = 15

    @task
    def infer_houses(self) -> None:
        self.client.post("/v2/models/house-price-gbm/infer", json=OIP_TENSOR, headers=AUTH,
                         name="/v2/models/[name]/infer")


class GeneratorUser(ZooUser):
    """Small seeded grids, as a demo page or a data-augmentation client would ask for."""

    abstract = True
    fixed_count = 1  # one of each whatever the user count: by weight they would round to none
    wait_time = constant_throughput(RATE / 5)
    model = ""
    request: dict = {}

    def on_start(self) -> None:
        self.seeds = itertools.count()

    @task
    def generate(self) -> None:
        self.client.post(f"/generate/{self.model}", json={**self.request, "seed": next(self.seeds)}, headers=AUTH,
                         name=f"/generate/{self.model}")


class VaeUser(GeneratorUser):
    model, request = "vae", {"n": 8}


class GanUser(GeneratorUser):
    model, request = "gan", {"n": 8}


class DiffusionUser(GeneratorUser):
    model, request = "diffusion", {"n": 4, "digit": 3, "steps": 20}
