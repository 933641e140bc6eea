"""ZooServe's services: thin endpoints over the model registry, and the two dependency workers.

Each endpoint validates (pydantic, through the form its route declares), shapes the input
tensor, calls the registry and shapes the answer; everything model-specific comes from the model
card, nothing from training code. Each endpoint declares its route next to it (``@endpoint``):
path, forms, answers, admission class; ``serving.routes`` lists them all.

Importing this module defines classes and nothing else: ``serving.server`` runs the start-up
hooks and makes these classes BentoML services for the settings in force.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import threading
import time
from typing import Callable

import aiohttp
import bentoml
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from serving.errors import FieldError, Unavailable
from serving.inference import explain, generation, images, novelty
from serving.inference.classify import classifier_rows, versioned_rows
from serving.inference.forecast import forecast_intervals, recursive_forecast, session_step
from serving.inference.jobs import Job, JobGone, JobQueue, JobsFull
from serving.inference.postprocess import odd_even, ranked
from serving.monitoring.drift import DriftMonitor, Reference
from serving.monitoring.predictions import PredictionLog
from serving.protocol.jobs import images_answer
from serving.protocol.routing import BINARY, JSON, MULTIPART, PNG, endpoint
from serving.repository.catalog import (BATCHED_MODELS, DIFFUSION_MODEL, DIGITS_MODEL, GENERATIVE_MODELS,
                                        HOUSE_PRICE_MODELS, IMAGES_MODEL, PASSENGERS_MODEL, generator_for)
from serving.repository.registry import LoadedModel, Registry
from serving.schemas import (DEFAULT_FRAMES, DEFAULT_TOP_K, EXAMPLE_HISTORY, EXAMPLE_HOUSE, EXAMPLE_PIXELS,
                             DiffusionRequest, DigitExplanation, DigitParity, DigitPixels, DigitResponse, DigitUpload,
                             ForecastRequest, ForecastResponse, GeneratedImages, GenerateRequest, House,
                             HouseExplainRequest, HouseExplainResponse, HouseExplanation, HousePrice, HousePriceRequest,
                             HousePriceResponse, ImageResponse, ImageUpload, InterpolationSeeds, InterpolationUploads,
                             NoBody, OcclusionMap, OutOfDistribution, UnconditionalRequest)
from serving.settings import Settings

# What every generation endpoint declares: a PNG grid or JSON, its own slot pool (a diffusion
# request holds a slot for seconds), and its work cancelled when the client goes.
GENERATED = {"answers": {PNG: BINARY, JSON: GeneratedImages}, "answer_headers": ("X-Seed", "X-Model"),
             "answer_note": "a PNG grid of the digits (format png, the default), or one base64 PNG each (format json)",
             "tag": "generators", "admission": "generation", "stops_when_gone": True}


def settle_heap() -> None:
    """Move everything start-up built out of the garbage collector's reach (``gc.freeze``).

    Those objects live as long as the worker; left in the collector's generations, every full
    collection walks them all, and under load those pauses were the p99: 120 ms at 100 requests/s
    on ``/house-price/predict``, 21 ms once frozen (``make loadtest``)."""
    gc.collect()
    gc.freeze()


class Classifiers:
    """The image classifiers behind BentoML's adaptive batching.

    Concurrent requests to the public endpoints become one ONNX Runtime call here. Limits:
    ``max_batch_size`` bounds memory and the slowest request in a batch; ``max_latency_ms`` is
    the most a request may wait before BentoML answers 503 instead of queueing without bound (the
    dispatcher's adaptive wait is usually far shorter). Digits take ~0.1 ms per image, so up to 64
    per batch; EfficientNet takes ~30 ms per 224x224 image on 2 cores, so at most 8.
    """

    def __init__(self) -> None:
        self.registry = Registry(Settings.from_env(), runs_here=lambda name: name in BATCHED_MODELS)
        settle_heap()

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def digits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, 28, 28) normalized digits -> (N, 10) probabilities (+ a novelty score column), and
        the number of the version that answered (``versioned_rows``)."""
        return versioned_rows(self.registry.get(DIGITS_MODEL), batch)

    @bentoml.api(batchable=True, max_batch_size=8, max_latency_ms=5000)
    def photos(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, 224, 224) normalized photos -> (N, classes) probabilities (+ a novelty score column),
        and the number of the version that answered."""
        return versioned_rows(self.registry.get(IMAGES_MODEL), batch)


class Generators:
    """The generative models, in their own worker process: a long diffusion request keeps this
    process busy while the classifiers and ZooServe's own models go on answering."""

    def __init__(self) -> None:
        settings = Settings.from_env()
        self.registry = Registry(settings, runs_here=lambda name: name in GENERATIVE_MODELS)
        self.jobs = JobQueue(settings.max_jobs, settings.job_ttl_seconds)
        settle_heap()

    async def _loaded(self, name: str, version: str | None) -> LoadedModel:
        """The model, looked up in a thread: a version this worker has not followed to yet is loaded on the way."""
        return await asyncio.get_running_loop().run_in_executor(None, self.registry.get, name, version)

    def _run(self, name: str, version: str | None, graph: str = "model"):
        model = self.registry.get(name, version)
        return lambda feeds: model.run(feeds, graph)[0]

    @bentoml.api
    async def sample(self, model: str, n: int, seed: int, digit: int | None = None, steps: int | None = None,
                     guidance: float | None = None, version: str | None = None, eta: float | None = None) -> np.ndarray:
        """(n, 28, 28) uint8 digits drawn with ``seed``; stopped between steps if the caller goes.
        ``version``: the one the API worker names in its answer (None: the default)."""
        loaded = await self._loaded(model, version)
        stop = threading.Event()
        start = time.perf_counter()
        work = asyncio.get_running_loop().run_in_executor(None, lambda: generation.generate(
            loaded.card.sampling, loaded.sessions, seed, n, digit, steps, guidance, stop=stop.is_set, eta=eta))
        try:
            pictures = await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()  # the sampler returns at its next step; the worker is free for the next request
            work.add_done_callback(lambda done: done.exception())  # its SamplingStopped is expected
            raise
        loaded.observe("sampler", time.perf_counter() - start, n)  # the whole loop of ONNX Runtime calls
        return pictures

    # Jobs: their state comes back as a dict, and an id that names no job as {"gone": ...}, which
    # the API worker answers 404 or 410 in its own words (a refusal raised here would reach it as
    # BentoML's "Error making request: ..."). Async, and brief on the event loop: a flood of
    # submissions and polls must not queue behind one another in BentoML's thread.
    @bentoml.api
    async def submit_job(self, model: str, n: int, seed: int, meta: dict, digit: int | None = None,
                         steps: int | None = None, guidance: float | None = None, version: str | None = None,
                         eta: float | None = None) -> dict:
        """Queue ``sample``'s work as a job; ``meta`` comes back with its state (model, seed, format)."""
        loaded = await self._loaded(model, version)
        sampling = loaded.card.sampling

        def work(job: Job) -> np.ndarray:
            return generation.generate(sampling, loaded.sessions, seed, n, digit, steps, guidance,
                                       stop=job.stop.is_set, progress=job.advance, eta=eta)

        total, unit, width = (steps, "steps", n) if steps is not None else (n, "images", 1)
        try:
            job = self.jobs.submit(work, total, unit, width, meta)
        except JobsFull as full:
            return {"full": str(full), "retry_after": full.retry_after}
        return self.jobs.status(job)

    @bentoml.api
    async def job_status(self, job_id: str) -> dict:
        return self._job_call(self.jobs.get, job_id)

    @bentoml.api
    async def cancel_job(self, job_id: str) -> dict:
        # In a thread: it waits for the sampler to stop, up to two seconds.
        return await asyncio.to_thread(self._job_call, self.jobs.cancel, job_id)

    @bentoml.api
    async def job_pictures(self, job_id: str, preview: bool = False) -> np.ndarray:
        """A finished job's digits, or a running one's preview; none (0, 28, 28) where there are none."""
        try:
            job = self.jobs.get(job_id)
        except JobGone:
            job = None
        pictures = None if job is None else job.preview if preview else job.pictures
        return np.zeros((0, 28, 28), np.uint8) if pictures is None else pictures

    def _job_call(self, call: Callable[[str], Job], job_id: str) -> dict:
        try:
            return self.jobs.status(call(job_id))
        except JobGone as gone:
            return {"gone": str(gone), "expired": gone.expired}

    @bentoml.api
    def encode(self, model: str, pictures: np.ndarray, version: str | None = None) -> np.ndarray:
        """(N, 1, 28, 28) classifier-normalized digits -> (N, latent_dim) posterior means."""
        sampling = self.registry.get(model, version).card.sampling
        encode = self._run(model, version, "encoder")
        return encode({"image": generation.encoder_input(pictures, sampling.output_range)})

    @bentoml.api
    def points(self, model: str, seeds: list[int], version: str | None = None) -> np.ndarray:
        """(len(seeds), latent_dim) latent points, each the first that seed's sample is drawn from."""
        loaded = self.registry.get(model, version)
        return np.concatenate([generation.latent_points(loaded.card.sampling, loaded.sessions, seed, 1)
                               for seed in seeds])

    @bentoml.api
    def infer(self, model: str, feeds: dict[str, np.ndarray], version: str | None = None) -> list[np.ndarray]:
        """The model graph's outputs for ``feeds``: the Open Inference Protocol's call on a
        generative model, whose sessions only this worker holds (the API worker checked the feeds
        against the graph's inputs)."""
        try:
            return self.registry.get(model, version).run(feeds)
        except Exception as error:  # ONNX Runtime refuses what the metadata allowed: the caller hears why
            raise bentoml.exceptions.InvalidArgument(str(error)) from None

    @bentoml.api
    def decode(self, model: str, z: np.ndarray, version: str | None = None) -> np.ndarray:
        """(N, latent_dim) latent points -> (N, 28, 28) uint8 digits."""
        return generation.decode(self.registry.get(model, version).card.sampling, self._run(model, version), z)


def _house_price(value: float, half_width: float | None, per_unit: float,
                 flag: OutOfDistribution | None) -> HousePrice:
    """One prediction with its interval and flag; a value cannot be negative, so neither can the low end."""
    if half_width is None:
        return HousePrice(value=value, price_usd=round(value * per_unit, 2), out_of_distribution=flag)
    low, high = max(0.0, value - half_width), value + half_width
    return HousePrice(value=value, price_usd=round(value * per_unit, 2), interval=(low, high),
                      interval_usd=(round(low * per_unit, 2), round(high * per_unit, 2)), out_of_distribution=flag)


def _checked(upload: bytes, field: str = "image") -> bytes:
    """An upload within the size limit (the body limit is wider: it holds the whole form)."""
    if len(upload) > images.MAX_BYTES:
        raise images.ImageError(f"{field}: {len(upload)} bytes is over the {images.MAX_BYTES} byte limit", status=413)
    return upload


def _digit_input(image: bytes | None, pixels: list[list[float]] | None) -> np.ndarray:
    """A digit request's one picture (an upload, or JSON pixels), as the classifiers' (1, 1, 28, 28) input."""
    picture = images.pixels_to_image(pixels) if pixels is not None else images.decode(_checked(image))
    return images.to_mnist(picture, field="pixels" if pixels is not None else "image")[None]


def _prepare_digits(uploads: dict[str, bytes]) -> np.ndarray:
    """Uploaded digit pictures -> (N, 1, 28, 28) normalized like the classifier's input."""
    return np.stack([images.to_mnist(images.decode(_checked(upload, field), field), field)
                     for field, upload in uploads.items()])


class ZooServe:
    """The API worker's endpoints. ``serving.server`` makes it a BentoML service, with the
    Classifiers (``classifiers``) and Generators (``generators``) as dependencies where this
    server has models for them; the gateway calls these methods (see ``serving.routes``)."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        # Sessions for every model but the generative ones where a generation worker runs them
        # (their cards alone here: /v2 sends their calls there), the batched ones included: /v2
        # runs them in-process, and so do the classify endpoints when batching is off.
        generated_elsewhere = hasattr(self, "generators")
        self.registry = Registry(self.settings, decides=True,
                                 runs_here=lambda name: not (generated_elsewhere and name in GENERATIVE_MODELS))
        # Where the gateway sends each model answer: the prediction log (off the request path; off
        # unless ZOOSERVE_PREDICTION_LOG is set) and the drift windows.
        self.predictions = PredictionLog(self.settings.prediction_log, self.settings.log_images,
                                         self.settings.log_retention_days, self.settings.log_queue)
        self.drift = DriftMonitor(self.settings.drift_window, self._drift_reference)
        settle_heap()

    def _drift_reference(self, name: str) -> Reference | None:
        loaded = self.registry.models.get(name)
        return None if loaded is None else ((loaded.card.model_extra or {}).get("drift_reference"), loaded.card.task,
                                            loaded.card.version)

    def __is_ready__(self) -> bool:
        # __init__ returns only after every model there loaded and answered its warm-up inference; in
        # a first run, the models it trains are loaded as they come.
        return self.registry.ready

    def _classify(self, name: str, picture: np.ndarray,
                  version: str | None) -> tuple[LoadedModel, np.ndarray, OutOfDistribution | None]:
        """The version that answered, one picture's probabilities and flag: batched with concurrent
        requests in `Classifiers`, or run here, unbatched (``ZOOSERVE_BATCHING``; ``make bench``
        compares the two). A request naming a version runs here too: the batch runs the default."""
        if not hasattr(self, "classifiers") or name not in BATCHED_MODELS or version is not None:
            loaded = self.registry.get(name, version)
            row = classifier_rows(loaded, picture)[0]
        else:
            row = (self.classifiers.digits if name == DIGITS_MODEL else self.classifiers.photos)(picture)[0]
            loaded, row = self.registry.answered_by(name, row[-1]), row[:-1]
        return loaded, *novelty.split(loaded, row)

    def _houses(self, houses: list[House], model: str,
                version: str | None) -> tuple[LoadedModel, np.ndarray, np.ndarray]:
        """The model a house request names, its feature rows in the card's order, and its predictions."""
        loaded = self.registry.get(HOUSE_PRICE_MODELS[model], version)
        spec = loaded.input_spec()[0]
        order = loaded.card.preprocessing["feature_order"]
        features = np.array([[getattr(house, name) for name in order] for house in houses], dtype=spec.dtype)
        return loaded, features, loaded.run({spec.name: features})[0].ravel()

    # The tabular endpoints, and the no-op they are measured against, are async: their work (well
    # under a millisecond of NumPy and ONNX Runtime) costs less than the hand-off to a worker
    # thread that the gateway gives a sync endpoint.
    @endpoint("/noop", forms={JSON: NoBody}, answers={JSON: {"type": "object", "maxProperties": 0}}, tag="service",
              examples={JSON: {}}, body_required=False, logged=False,
              summary="Does nothing: the cost of a request through the service, which `make bench` compares with")
    async def noop(self) -> dict:
        """Does nothing: what a request costs through the gateway, the baseline ``make bench`` sets
        the model endpoints against."""
        return {}

    @endpoint("/house-price/predict", forms={JSON: HousePriceRequest}, answers={JSON: HousePriceResponse},
              examples={JSON: {"houses": [EXAMPLE_HOUSE.model_dump()], "model": "gbm"}},
              summary="Median house values of California block groups")
    async def house_price_predict(self, houses: list[House], model: str = "gbm", level: float = 0.9,
                                  version: str | None = None) -> HousePriceResponse:
        """Median house value of California block groups (1 to 1,000 per request), each with a
        prediction interval at ``level`` (split conformal, calibrated on rows the model never fitted)."""
        loaded, features, values = self._houses(houses, model, version)
        per_unit = loaded.card.preprocessing["price_usd_per_unit"]
        calibration = loaded.card.interval_calibration
        half = calibration.half_width(level) if calibration is not None else None
        scores = novelty.scores(loaded, features)
        order = loaded.card.preprocessing["feature_order"]
        flags = [None] * len(values) if scores is None else [
            novelty.flag(loaded, score, row, order) for score, row in zip(scores.tolist(), features.tolist())]
        return HousePriceResponse(predictions=[_house_price(value, half, per_unit, flag)
                                               for value, flag in zip(values.tolist(), flags)], level=level,
                                  model=loaded.summary)

    @endpoint("/house-price/explain", forms={JSON: HouseExplainRequest}, answers={JSON: HouseExplainResponse},
              examples={JSON: {"houses": [EXAMPLE_HOUSE.model_dump()], "model": "gbm"}},
              summary="Why each house got its price: exact Shapley values of its features (up to 8 houses)")
    def house_price_explain(self, houses: list[House], model: str = "gbm", level: float = 0.9,
                            version: str | None = None) -> HouseExplainResponse:
        """Why each house got its price: exact Shapley values of its eight features against the
        model's background of training rows, which add up to the prediction minus the baseline.
        Takes the body of ``/house-price/predict`` (``level`` is accepted and unused), up to 8 houses."""
        loaded, features, _ = self._houses(houses, model, version)
        explanation = loaded.card.explanation
        if explanation is None:
            raise Unavailable(f"{loaded.name} was exported without an explanation background; retrain it")
        spec = loaded.input_spec()[0]
        values, attributions, baseline = explain.shapley(
            lambda rows: loaded.run({spec.name: rows})[0].ravel(), features,
            np.asarray(explanation.background, spec.dtype), np.asarray(explanation.weights))
        order = loaded.card.preprocessing["feature_order"]
        return HouseExplainResponse(
            explanations=[HouseExplanation(value=float(value), baseline=baseline,
                                           attributions=dict(zip(order, map(float, row))))
                          for value, row in zip(values, attributions)],
            method=f"exact interventional Shapley values (all {2 ** len(order)} coalitions) against "
                   f"{len(explanation.background)} weighted background rows", model=loaded.summary)

    @endpoint("/passengers/forecast", forms={JSON: ForecastRequest}, answers={JSON: ForecastResponse},
              examples={JSON: {"history": EXAMPLE_HISTORY, "horizon": 12}}, body_required=False,
              summary="Monthly airline passengers for the next months")
    async def passengers_forecast(self, history: list[float] | None = None, horizon: int = 12,
                                  level: float = 0.9, version: str | None = None) -> ForecastResponse:
        """Monthly airline passengers (thousands) for the next 1 to 36 months, predictions fed back, each
        with a prediction interval at ``level`` (conformal, calibrated on the validation period)."""
        loaded = self.registry.get(PASSENGERS_MODEL, version)
        values = loaded.card.series["values"] if history is None else history
        step = session_step(loaded.sessions["model"], loaded.input_spec()[0].name)
        try:
            forecast = recursive_forecast(step, values, loaded.card.preprocessing["window"], horizon)
        except ValueError as error:
            raise FieldError("history", str(error), "too_short") from None
        # Within the schema's bounds the served model stays finite (measured at both extremes); another may not.
        if not np.isfinite(forecast).all():
            raise FieldError("history", "values too extreme to forecast")
        calibration = loaded.card.forecast_calibration
        intervals = forecast_intervals(forecast, calibration, level).tolist() if calibration is not None else None
        return ForecastResponse(forecast=forecast.tolist(), intervals=intervals, level=level, model=loaded.summary)

    @endpoint("/digits/classify", forms={MULTIPART: DigitUpload, JSON: DigitPixels}, answers={JSON: DigitResponse},
              examples={JSON: {"pixels": EXAMPLE_PIXELS}},
              summary="The digit in a picture (multipart `image`) or in 28x28 gray values (JSON `pixels`)")
    def digits_classify(self, image: bytes | None = None, pixels: list[list[float]] | None = None,
                        model: str = DIGITS_MODEL, version: str | None = None) -> DigitResponse:
        """A handwritten digit: upload any picture (field ``image``) or send 28x28 ``pixels``;
        ``model`` picks the classifier (the CNN by default)."""
        self.registry.get(model, version)  # an unknown or unloaded model: refused before the picture is decoded
        batch = _digit_input(image, pixels)
        loaded, probabilities, flag = self._classify(model, batch, version)
        label, probability = odd_even(probabilities)
        return DigitResponse(digit=int(probabilities.argmax()), probabilities=probabilities.tolist(),
                             parity=DigitParity(label=label, probability=probability), out_of_distribution=flag,
                             model=loaded.summary)

    @endpoint("/digits/explain", forms={MULTIPART: DigitUpload, JSON: DigitPixels}, answers={JSON: DigitExplanation},
              examples={JSON: {"pixels": EXAMPLE_PIXELS}},
              summary="Which strokes made the digit: an occlusion map (28x28 numbers and a PNG heat map)")
    def digits_explain(self, image: bytes | None = None, pixels: list[list[float]] | None = None,
                       model: str = DIGITS_MODEL, version: str | None = None) -> DigitExplanation:
        """Which strokes made the digit: an occlusion map of the predicted digit's probability, as
        28x28 numbers and a PNG heat map. Takes the body of ``/digits/classify``."""
        loaded = self.registry.get(model, version)
        batch = _digit_input(image, pixels)
        probabilities = classifier_rows(loaded, batch)[0, :len(loaded.card.labels)]
        digit = int(probabilities.argmax())
        paper = (0.0 - images.MNIST_MEAN) / images.MNIST_STD
        fall = explain.occlusion_map(lambda pictures: classifier_rows(loaded, pictures),
                                     batch[0], digit, paper)
        ink = batch[0, 0] * images.MNIST_STD + images.MNIST_MEAN
        heat = base64.b64encode(images.png(images.heat_map(ink, fall))).decode()
        return DigitExplanation(digit=digit, probability=float(probabilities[digit]), model=loaded.summary,
                                occlusion=OcclusionMap(patch=explain.OCCLUSION_PATCH, stride=explain.OCCLUSION_STRIDE,
                                                       values=fall.round(5).tolist(), png=heat))

    @endpoint("/images/classify", forms={MULTIPART: ImageUpload}, answers={JSON: ImageResponse},
              summary="The most probable labels of a photo")
    def images_classify(self, image: bytes, top_k: int | None = None, version: str | None = None) -> ImageResponse:
        """The most probable labels of a photo, by the transfer-learned CNN (default: ants vs bees)."""
        model = self.registry.get(IMAGES_MODEL, version)
        labels = model.card.labels
        top_k = min(DEFAULT_TOP_K, len(labels)) if top_k is None else top_k
        if top_k > len(labels):
            raise FieldError("top_k", f"must be at most {len(labels)} (the number of labels)", "less_than_equal")
        prep = model.card.preprocessing
        batch = images.to_classifier_input(images.decode(_checked(image)), prep["resize"], prep["crop"],
                                           prep["mean"], prep["std"])[None]
        # Prepared as the version asked for (or the default) wants it; the answer names the version that answered.
        answered, probabilities, flag = self._classify(IMAGES_MODEL, batch, version)
        return ImageResponse(predictions=ranked(probabilities, answered.card.labels, top_k),
                             out_of_distribution=flag, model=answered.summary)


    async def call_generators(self, method: str, **arguments: object) -> np.ndarray:
        """One call to the Generators worker; a worker that is restarting (killed, out of memory)
        is a 503 the client may retry, not a 500."""
        try:
            return await getattr(self.generators.to_async, method)(**arguments)
        except (aiohttp.ClientConnectionError, bentoml.exceptions.ServiceUnavailable) as error:
            raise Unavailable(f"the generation worker is restarting ({type(error).__name__}); retry shortly",
                              retry_after=10) from None

    def _generator_for(self, family: str, digit: int | None) -> str:
        """The model that answers: the family's, or its twin for a digit (a 400 naming the digit when
        this server has no twin: retrying cannot help, training it can)."""
        name = generator_for(family, digit)
        if digit is not None and name not in self.registry.models and name not in self.registry.pending():
            raise FieldError("digit", f"{family} draws a requested digit with {name}, which this server has not "
                                      f"loaded (train it: python -m training {name})")
        return name

    # The generation endpoints are async: they wait on the Generators worker without holding the
    # thread that this service's sync endpoints (the classifiers, the explanations) run on.
    def _resolved(self, name: str, version: str | None, n: int, seed: int | None, digit: int | None,
                  steps: int | None = None,
                  guidance: float | None = None,
                  eta: float | None = None) -> tuple[LoadedModel, generation.SamplingRequest]:
        model = self.registry.get(name, version)
        return model, generation.SamplingRequest.resolve(model.card, n, seed, digit, steps, guidance, eta,
                                                         limits=self.settings)

    async def _generate(self, name: str, n: int, seed: int | None, digit: int | None, format: str,
                        version: str | None, steps: int | None = None,
                        guidance: float | None = None, eta: float | None = None) -> GeneratedImages | Response:
        model, request = self._resolved(name, version, n, seed, digit, steps, guidance, eta)
        pictures = await self.call_generators("sample", **request.arguments(), version=model.card.version)
        return images_answer(pictures, request.seed, model.summary, format)

    async def submit_job(self, family: str, n: int, seed: int | None = None, digit: int | None = None,
                         format: str = "png", version: str | None = None, prediction_id: str | None = None,
                         **ddim: float | None) -> dict:
        """Queue a generation job of the family's model (``serving.protocol.jobs``): its state, or
        {"full": ...} when the generation worker holds ZOOSERVE_MAX_JOBS already."""
        name = DIFFUSION_MODEL if family == DIFFUSION_MODEL else self._generator_for(family, digit)
        model, request = self._resolved(name, version, n, seed, digit, **ddim)
        meta = {"family": family, "model": model.summary, "seed": request.seed, "format": format,
                "prediction_id": prediction_id}
        return await self.call_generators("submit_job", **request.arguments(), version=model.card.version, meta=meta)

    @endpoint("/generate/vae", forms={JSON: GenerateRequest}, **GENERATED,
              examples={JSON: {"n": 16, "seed": 1, "format": "png"}},
              summary="Digits decoded from random points of the VAE's latent space (a digit: by the conditional VAE)")
    async def generate_vae(self, n: int, seed: int | None = None, format: str = "png",
                           digit: int | None = None, version: str | None = None) -> GeneratedImages:
        """Digits decoded from random points of the VAE's latent space; a requested digit is drawn
        by the conditional VAE (``vae-conditional``)."""
        return await self._generate(self._generator_for("vae", digit), n, seed, digit, format, version)

    @endpoint("/generate/gan", forms={JSON: GenerateRequest}, **GENERATED,
              examples={JSON: {"n": 16, "seed": 1, "digit": 3, "format": "png"}},
              summary="Digits from the GAN's generator (a digit: by the conditional GAN)")
    async def generate_gan(self, n: int, seed: int | None = None, format: str = "png",
                           digit: int | None = None, version: str | None = None) -> GeneratedImages:
        """Digits from the GAN generator (its card names the training objective); a requested digit
        is drawn by the conditional GAN (``gan-conditional``)."""
        return await self._generate(self._generator_for("gan", digit), n, seed, digit, format, version)

    @endpoint("/generate/wgan-gp", forms={JSON: UnconditionalRequest}, **GENERATED,
              examples={JSON: {"n": 16, "seed": 1, "format": "png"}},
              summary="Digits from the GAN trained with WGAN-GP (a Wasserstein critic), to compare with /generate/gan")
    async def generate_wgan_gp(self, n: int, seed: int | None = None, format: str = "png",
                               version: str | None = None) -> GeneratedImages:
        """Digits from ``gan-wgan-gp``: the GAN's networks trained with a Wasserstein critic and a
        gradient penalty instead of the non-saturating loss, for the same budget."""
        return await self._generate(generator_for("wgan-gp", None), n, seed, None, format, version)

    @endpoint("/generate/diffusion", forms={JSON: DiffusionRequest}, **GENERATED,
              examples={JSON: {"n": 16, "seed": 1, "digit": 7, "format": "png"}},
              summary="Digits denoised by DDIM, optionally all of one digit")
    async def generate_diffusion(self, n: int, seed: int | None = None, digit: int | None = None,
                                 format: str = "png", steps: int | None = None, guidance: float | None = None,
                                 eta: float | None = None, version: str | None = None) -> GeneratedImages:
        """Digits denoised by DDIM from the diffusion model, optionally of one requested digit."""
        return await self._generate(DIFFUSION_MODEL, n, seed, digit, format, version, steps=steps, guidance=guidance,
                                    eta=eta)

    @endpoint("/generate/vae/interpolate", forms={JSON: InterpolationSeeds, MULTIPART: InterpolationUploads},
              answers={PNG: BINARY}, answer_note="the strip as one PNG", answer_headers=("X-Model",),
              tag="generators",
              admission="generation", stops_when_gone=True, examples={JSON: {"seeds": [1, 2]}},
              summary="A strip of the VAE's decodings between two seeds (JSON) or two uploaded digits (multipart)")
    async def generate_vae_interpolate(self, seeds: list[int] | None = None, start: bytes | None = None,
                                       end: bytes | None = None, frames: int | None = None,
                                       version: str | None = None) -> Response:
        """A PNG strip of the VAE's decodings along the line between two latent points."""
        frames = min(DEFAULT_FRAMES, self.settings.max_images) if frames is None else frames
        if frames > self.settings.max_images:
            raise FieldError("frames", f"must be at most {self.settings.max_images} (ZOOSERVE_MAX_IMAGES)",
                             "less_than_equal")
        model = self.registry.get("vae", version)
        version = {"model": "vae", "version": model.card.version}  # every call on the version the answer names
        if seeds is not None:
            ends = await self.call_generators("points", seeds=seeds, **version)
        else:
            pictures = await run_in_threadpool(_prepare_digits, {"start": start, "end": end})
            ends = await self.call_generators("encode", pictures=pictures, **version)
        strip = await self.call_generators("decode", z=generation.interpolate(ends[0], ends[1], frames), **version)
        return Response(images.png(images.grid(strip, columns=frames)), media_type="image/png",
                        headers={"X-Model": f"{model.name} {model.card.version}"})
