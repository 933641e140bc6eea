"""The ZooServe BentoML service: thin endpoints over the model registry.

Each endpoint validates (pydantic), shapes the input tensor, calls the registry and shapes the
answer; everything model-specific comes from the model card, nothing from training code.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import threading
import time
from pathlib import Path

import aiohttp
import bentoml
import numpy as np
from bentoml._internal.context import server_context
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from . import bentoml_fixes, explain, gateway, generation, images, novelty, supervision, telemetry, training_plan
from .admission import GENERATION_PREFIX, CancelWhenGone
from .catalog import (BATCHED_MODELS, DIFFUSION_MODEL, DIGITS_MODEL, GENERATIVE_MODELS, HOUSE_PRICE_MODELS,
                      IMAGES_MODEL, PASSENGERS_MODEL, generator_for)
from .errors import FieldError, Unavailable
from .forecast import forecast_intervals, recursive_forecast, session_step
from .postprocess import odd_even, ranked, softmax
from .registry import LoadedModel, Registry, verify_models_apart
from .schemas import (
    DEFAULT_FRAMES, DEFAULT_TOP_K, DiffusionRequest, DigitExplanation, DigitParity, DigitRequest, DigitResponse,
    ForecastRequest, ForecastResponse, GeneratedImages, GenerateRequest, House, HouseExplainRequest,
    HouseExplainResponse, HouseExplanation, HousePrice, HousePriceRequest, HousePriceResponse, ImageRequest,
    ImageResponse, InterpolateRequest, OcclusionMap, OutOfDistribution, PngImage,
)
from .sessions import batching_pays
from .settings import Settings
from .web import web_app

bentoml_fixes.apply()
gateway.install()
telemetry.cache_metrics_pid()
supervision.exit_with_parent()
SETTINGS = Settings.from_env()
# A failure inside a worker's __init__ leaves `bentoml serve` restarting it forever with no port
# answering; checking every card and loading every graph here, when the server process loads this
# module, stops start-up with the cause instead.
if server_context.worker_index is None:  # the server process; each worker loads what it runs itself
    verify_models_apart()
BATCHING = batching_pays(SETTINGS)
# A dependency is a worker process of its own (about 120 MB before any model); one with nothing to
# run is not declared, so BentoML does not start it.
# In a first run, one that will have a generative model (the plan lists it) starts it from the outset.
PLANNED = training_plan.planned(SETTINGS.training_progress)
GENERATING = any((SETTINGS.models_dir / name / "card.json").exists() or name in PLANNED for name in GENERATIVE_MODELS)
# The dependency workers keep BentoML's in-flight limit; the API worker admits by endpoint class
# (``admission``), so BentoML's single pool is off there.
TRAFFIC = {"timeout": SETTINGS.timeout_seconds, "max_concurrency": SETTINGS.max_concurrency}
# BentoML's client for a dependency replaces its HTTP session every 100 calls or 300 s and closes
# the old one under requests still in flight on it (a 500 for each, issue 13); the workers it
# talks to are local sockets, so the session is kept for the process's life.
KEEP_CONNECTIONS = {"max_requests": 2**62, "max_age": 1e12}
RESOURCES = {"gpu": SETTINGS.gpus} if SETTINGS.gpus else {}
HTTP = ({"cors": {"enabled": True, "access_control_allow_origins": list(SETTINGS.cors_origins),
                  "access_control_allow_methods": ["GET", "POST", "OPTIONS"],
                  "access_control_allow_headers": ["Authorization", "Content-Type", "X-Request-ID"],
                  "access_control_expose_headers": ["X-Request-ID", "X-Seed", "X-Model"]}}
        if SETTINGS.cors_origins else {})


def settle_heap() -> None:
    """Move everything start-up built out of the garbage collector's reach (``gc.freeze``).

    Those objects live as long as the worker; left in the collector's generations, every full
    collection walks them all, and under load those pauses were the p99: 120 ms at 100 requests/s
    on ``/house-price/predict``, 21 ms once frozen (``make loadtest``)."""
    gc.collect()
    gc.freeze()


def _classifier_rows(registry: Registry, name: str, batch: np.ndarray) -> np.ndarray:
    """A classifier's class probabilities for a batch prepared for the CNNs, followed by a column of
    novelty scores where the card has a novelty graph (``novelty.split`` takes them apart).

    The batch is reshaped to the graph's input (the classical classifiers take 784 flat pixels);
    probabilities come from its ``probabilities`` output where it has one, else the softmax of its
    ``logits`` at the card's temperature (fitted on the validation slice so that a 90% answer is
    right about 90% of the time)."""
    model = registry.get(name)
    spec = model.input_spec()[0]
    outputs = dict(zip([output.name for output in model.card.graphs["model"].outputs],
                       model.run({spec.name: batch.reshape(len(batch), *spec.shape[1:])})))
    if "probabilities" in outputs:
        probabilities = outputs["probabilities"]
    else:
        calibration = model.card.probability_calibration
        probabilities = softmax(outputs["logits"] / (calibration.temperature if calibration is not None else 1.0))
    if model.card.novelty is None:
        return probabilities
    return np.column_stack([probabilities, novelty.scores(model, outputs["features"])])


@bentoml.service(name="zooserve-classifiers", workers=1, traffic=TRAFFIC, resources=RESOURCES,
                 runner_connection=KEEP_CONNECTIONS)
class Classifiers:
    """The image classifiers behind BentoML's adaptive batching.

    Concurrent requests to the public endpoints become one ONNX Runtime call here. Limits:
    ``max_batch_size`` bounds memory and the slowest request in a batch; ``max_latency_ms`` is
    the most a request may wait before BentoML answers 503 instead of queueing without bound (the
    dispatcher's adaptive wait is usually far shorter). Digits take ~0.1 ms per image, so up to 64
    per batch; EfficientNet takes ~30 ms per 224x224 image on 2 cores, so at most 8.
    """

    def __init__(self) -> None:
        self.registry = Registry(SETTINGS, runs_here=lambda name: name in BATCHED_MODELS)
        settle_heap()

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def digits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, 28, 28) normalized digits -> (N, 10) probabilities (+ a novelty score column)."""
        return _classifier_rows(self.registry, DIGITS_MODEL, batch)

    @bentoml.api(batchable=True, max_batch_size=8, max_latency_ms=5000)
    def photos(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, 224, 224) normalized photos -> (N, classes) probabilities (+ a novelty score column)."""
        return _classifier_rows(self.registry, IMAGES_MODEL, batch)


@bentoml.service(name="zooserve-generators", workers=1, traffic=TRAFFIC, resources=RESOURCES,
                 runner_connection=KEEP_CONNECTIONS)
class Generators:
    """The generative models, in their own worker process: a long diffusion request keeps this
    process busy while the classifiers and ZooServe's own models go on answering."""

    def __init__(self) -> None:
        self.registry = Registry(SETTINGS, runs_here=lambda name: name in GENERATIVE_MODELS)
        settle_heap()

    def _run(self, name: str, graph: str = "model"):
        model = self.registry.get(name)
        return lambda feeds: model.run(feeds, graph)[0]

    @bentoml.api
    async def sample(self, model: str, n: int, seed: int, digit: int | None = None, steps: int | None = None,
                     guidance: float | None = None) -> np.ndarray:
        """(n, 28, 28) uint8 digits drawn with ``seed``; stopped between steps if the caller goes."""
        loaded = self.registry.get(model)
        stop = threading.Event()
        start = time.perf_counter()
        work = asyncio.get_running_loop().run_in_executor(None, lambda: generation.generate(
            loaded.card.sampling, loaded.sessions, seed, n, digit, steps, guidance, stop=stop.is_set))
        try:
            pictures = await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()  # the sampler returns at its next step; the worker is free for the next request
            work.add_done_callback(lambda done: done.exception())  # its SamplingStopped is expected
            raise
        loaded.observe("sampler", time.perf_counter() - start, n)  # the whole loop of ONNX Runtime calls
        return pictures

    @bentoml.api
    def encode(self, model: str, pictures: np.ndarray) -> np.ndarray:
        """(N, 1, 28, 28) classifier-normalized digits -> (N, latent_dim) posterior means."""
        sampling = self.registry.get(model).card.sampling
        return self._run(model, "encoder")({"image": generation.encoder_input(pictures, sampling.output_range)})

    @bentoml.api
    def points(self, model: str, seeds: list[int]) -> np.ndarray:
        """(len(seeds), latent_dim) latent points, each the first that seed's sample is drawn from."""
        loaded = self.registry.get(model)
        return np.concatenate([generation.latent_points(loaded.card.sampling, loaded.sessions, seed, 1)
                               for seed in seeds])

    @bentoml.api
    def decode(self, model: str, z: np.ndarray) -> np.ndarray:
        """(N, latent_dim) latent points -> (N, 28, 28) uint8 digits."""
        return generation.decode(self.registry.get(model).card.sampling, self._run(model), z)


def _house_price(value: float, half_width: float | None, per_unit: float,
                 flag: OutOfDistribution | None) -> HousePrice:
    """One prediction with its interval and flag; a value cannot be negative, so neither can the low end."""
    if half_width is None:
        return HousePrice(value=value, price_usd=round(value * per_unit, 2), out_of_distribution=flag)
    low, high = max(0.0, value - half_width), value + half_width
    return HousePrice(value=value, price_usd=round(value * per_unit, 2), interval=(low, high),
                      interval_usd=(round(low * per_unit, 2), round(high * per_unit, 2)), out_of_distribution=flag)


def _images_answer(pictures: np.ndarray, seed: int, model: dict, format: str) -> GeneratedImages | Response:
    """A PNG grid (seed and model in headers) or JSON with one base64 PNG per digit."""
    if format == "json":
        return GeneratedImages(images=[base64.b64encode(images.png(p)).decode() for p in pictures], seed=seed,
                               model=model)
    return Response(images.png(images.grid(pictures)), media_type="image/png",
                    headers={"X-Seed": str(seed), "X-Model": f"{model['name']} {model['version']}"})


def _read_upload(path: Path, field: str = "image") -> bytes:
    """The upload's bytes, refusing oversized files before reading them."""
    size = path.stat().st_size
    if size > images.MAX_BYTES:
        raise images.ImageError(f"{field}: {size} bytes is over the {images.MAX_BYTES} byte limit", status=413)
    return path.read_bytes()


def _digit_input(image: Path | None, pixels: list[list[float]] | None) -> np.ndarray:
    """A digit request's one picture, as the classifiers' (1, 1, 28, 28) input."""
    if (image is None) == (pixels is None):
        raise FieldError("image", "send exactly one of a multipart `image` upload or JSON `pixels`",
                         "missing" if image is None else "value_error")
    picture = images.pixels_to_image(pixels) if pixels is not None else images.decode(_read_upload(image))
    return images.to_mnist(picture, field="pixels" if pixels is not None else "image")[None]


def _prepare_digits(uploads: dict[str, Path]) -> np.ndarray:
    """Uploaded digit pictures -> (N, 1, 28, 28) normalized like the classifier's input."""
    return np.stack([images.to_mnist(images.decode(_read_upload(path, field), field), field)
                     for field, path in uploads.items()])


@bentoml.asgi_app(web_app, path="/")
@bentoml.service(name="zooserve", traffic={"timeout": SETTINGS.timeout_seconds, "max_concurrency": None}, http=HTTP,
                 resources=RESOURCES)
class ZooServe:
    if BATCHING:
        classifiers = bentoml.depends(Classifiers)
    if GENERATING:
        generators = bentoml.depends(Generators)

    def __init__(self) -> None:
        # Sessions for every model, the batched ones included: the Open Inference Protocol (/v2)
        # runs any model in-process, and so do the classify endpoints when batching is off.
        self.registry = Registry(SETTINGS)
        settle_heap()

    def __is_ready__(self) -> bool:
        # __init__ returns only after every model there loaded and answered its warm-up inference; in
        # a first run, the models it trains are loaded as they come.
        return self.registry.ready

    def _classify(self, name: str, picture: np.ndarray) -> tuple[np.ndarray, OutOfDistribution | None]:
        """One picture's probabilities and flag: batched with concurrent requests in `Classifiers`,
        or run here, unbatched (``ZOOSERVE_BATCHING``; ``make bench`` compares the two)."""
        if not BATCHING or name not in BATCHED_MODELS:
            row = _classifier_rows(self.registry, name, picture)[0]
        else:
            row = (self.classifiers.digits if name == DIGITS_MODEL else self.classifiers.photos)(picture)[0]
        return novelty.split(self.registry.get(name), row)

    def _houses(self, houses: list[House], model: str) -> tuple[LoadedModel, np.ndarray, np.ndarray]:
        """The model a house request names, its feature rows in the card's order, and its predictions."""
        loaded = self.registry.get(HOUSE_PRICE_MODELS[model])
        spec = loaded.input_spec()[0]
        order = loaded.card.preprocessing["feature_order"]
        features = np.array([[getattr(house, name) for name in order] for house in houses], dtype=spec.dtype)
        return loaded, features, loaded.run({spec.name: features})[0].ravel()

    # The tabular endpoints, and the no-op they are measured against, are async: their work (well
    # under a millisecond of NumPy and ONNX Runtime) costs less than the hand-off to BentoML's
    # thread pool that a sync API pays.
    @bentoml.api(route="/noop")
    async def noop(self) -> dict:
        """Does nothing: what a request costs through BentoML and the middlewares, the baseline
        ``make bench`` sets the model endpoints against."""
        return {}

    @bentoml.api(route="/house-price/predict", input_spec=HousePriceRequest)
    async def house_price_predict(self, houses: list[House], model: str = "gbm",
                                  level: float = 0.9) -> HousePriceResponse:
        """Median house value of California block groups (1 to 1,000 per request), each with a
        prediction interval at ``level`` (split conformal, calibrated on rows the model never fitted)."""
        loaded, features, values = self._houses(houses, model)
        per_unit = loaded.card.preprocessing["price_usd_per_unit"]
        calibration = loaded.card.interval_calibration
        half = calibration.half_width(level) if calibration is not None else None
        scores = novelty.scores(loaded, features)
        order = loaded.card.preprocessing["feature_order"]
        flags = [None] * len(values) if scores is None else [
            novelty.flag(loaded, score, row, order) for score, row in zip(scores, features)]
        return HousePriceResponse(predictions=[_house_price(float(v), half, per_unit, flag)
                                               for v, flag in zip(values, flags)], level=level, model=loaded.summary)

    @bentoml.api(route="/house-price/explain", input_spec=HouseExplainRequest)
    def house_price_explain(self, houses: list[House], model: str = "gbm", level: float = 0.9) -> HouseExplainResponse:
        """Why each house got its price: exact Shapley values of its eight features against the
        model's background of training rows, which add up to the prediction minus the baseline.
        Takes the body of ``/house-price/predict`` (``level`` is accepted and unused), up to 8 houses."""
        loaded, features, _ = self._houses(houses, model)
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

    @bentoml.api(route="/passengers/forecast", input_spec=ForecastRequest)
    async def passengers_forecast(self, history: list[float] | None = None, horizon: int = 12,
                                  level: float = 0.9) -> ForecastResponse:
        """Monthly airline passengers (thousands) for the next 1 to 36 months, predictions fed back, each
        with a prediction interval at ``level`` (conformal, calibrated on the validation period)."""
        loaded = self.registry.get(PASSENGERS_MODEL)
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

    @bentoml.api(route="/digits/classify", input_spec=DigitRequest)
    def digits_classify(self, image: Path | None = None, pixels: list[list[float]] | None = None,
                        model: str = DIGITS_MODEL) -> DigitResponse:
        """A handwritten digit: upload any picture (field ``image``) or send 28x28 ``pixels``;
        ``model`` picks the classifier (the CNN by default)."""
        loaded = self.registry.get(model)
        batch = _digit_input(image, pixels)
        probabilities, flag = self._classify(model, batch)
        label, probability = odd_even(probabilities)
        return DigitResponse(digit=int(probabilities.argmax()), probabilities=probabilities.tolist(),
                             parity=DigitParity(label=label, probability=probability), out_of_distribution=flag,
                             model=loaded.summary)

    @bentoml.api(route="/digits/explain", input_spec=DigitRequest)
    def digits_explain(self, image: Path | None = None, pixels: list[list[float]] | None = None,
                       model: str = DIGITS_MODEL) -> DigitExplanation:
        """Which strokes made the digit: an occlusion map of the predicted digit's probability, as
        28x28 numbers and a PNG heat map. Takes the body of ``/digits/classify``."""
        loaded = self.registry.get(model)
        batch = _digit_input(image, pixels)
        probabilities = _classifier_rows(self.registry, model, batch)[0, :len(loaded.card.labels)]
        digit = int(probabilities.argmax())
        paper = (0.0 - images.MNIST_MEAN) / images.MNIST_STD
        fall = explain.occlusion_map(lambda pictures: _classifier_rows(self.registry, model, pictures),
                                     batch[0], digit, paper)
        ink = batch[0, 0] * images.MNIST_STD + images.MNIST_MEAN
        heat = base64.b64encode(images.png(images.heat_map(ink, fall))).decode()
        return DigitExplanation(digit=digit, probability=float(probabilities[digit]), model=loaded.summary,
                                occlusion=OcclusionMap(patch=explain.OCCLUSION_PATCH, stride=explain.OCCLUSION_STRIDE,
                                                       values=fall.round(5).tolist(), png=heat))

    @bentoml.api(route="/images/classify", input_spec=ImageRequest)
    def images_classify(self, image: Path, top_k: int | None = None) -> ImageResponse:
        """The most probable labels of a photo, by the transfer-learned CNN (default: ants vs bees)."""
        model = self.registry.get(IMAGES_MODEL)
        labels = model.card.labels
        top_k = min(DEFAULT_TOP_K, len(labels)) if top_k is None else top_k
        if top_k > len(labels):
            raise FieldError("top_k", f"must be at most {len(labels)} (the number of labels)", "less_than_equal")
        prep = model.card.preprocessing
        batch = images.to_classifier_input(images.decode(_read_upload(image)), prep["resize"], prep["crop"],
                                           prep["mean"], prep["std"])[None]
        probabilities, flag = self._classify(IMAGES_MODEL, batch)
        return ImageResponse(predictions=ranked(probabilities, labels, top_k), out_of_distribution=flag,
                             model=model.summary)


    async def _call_generators(self, method: str, **arguments: object) -> np.ndarray:
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
    # thread that this service's sync endpoints (the classifiers, forecasts) run on.
    async def _generate(self, name: str, n: int, seed: int | None, digit: int | None, format: str,
                        steps: int | None = None, guidance: float | None = None) -> GeneratedImages | Response:
        model = self.registry.get(name)
        request = generation.SamplingRequest.resolve(model.card, n, seed, digit, steps, guidance, SETTINGS)
        pictures = await self._call_generators("sample", **request.arguments())
        return _images_answer(pictures, request.seed, model.summary, format)

    @bentoml.api(route="/generate/vae", input_spec=GenerateRequest)
    async def generate_vae(self, n: int, seed: int | None = None, format: str = "png",
                           digit: int | None = None) -> GeneratedImages:
        """Digits decoded from random points of the VAE's latent space; a requested digit is drawn
        by the conditional VAE (``vae-conditional``)."""
        return await self._generate(self._generator_for("vae", digit), n, seed, digit, format)

    @bentoml.api(route="/generate/gan", input_spec=GenerateRequest)
    async def generate_gan(self, n: int, seed: int | None = None, format: str = "png",
                           digit: int | None = None) -> GeneratedImages:
        """Digits from the GAN generator (its card names the training objective); a requested digit
        is drawn by the conditional GAN (``gan-conditional``)."""
        return await self._generate(self._generator_for("gan", digit), n, seed, digit, format)

    @bentoml.api(route="/generate/diffusion", input_spec=DiffusionRequest)
    async def generate_diffusion(self, n: int, seed: int | None = None, digit: int | None = None,
                                 format: str = "png", steps: int | None = None,
                                 guidance: float | None = None) -> GeneratedImages:
        """Digits denoised by DDIM from the diffusion model, optionally of one requested digit."""
        return await self._generate(DIFFUSION_MODEL, n, seed, digit, format, steps=steps, guidance=guidance)

    @bentoml.api(route="/generate/vae/interpolate", input_spec=InterpolateRequest)
    async def generate_vae_interpolate(self, seeds: list[int] | None = None, start: Path | None = None,
                                       end: Path | None = None, frames: int | None = None) -> PngImage:
        """A PNG strip of the VAE's decodings along the line between two latent points."""
        frames = min(DEFAULT_FRAMES, SETTINGS.max_images) if frames is None else frames
        if frames > SETTINGS.max_images:
            raise FieldError("frames", f"must be at most {SETTINGS.max_images} (ZOOSERVE_MAX_IMAGES)",
                             "less_than_equal")
        uploads = {field: path for field, path in (("start", start), ("end", end)) if path is not None}
        if (seeds is None) == (not uploads):
            raise FieldError("seeds", "send two `seeds`, or two digit pictures as `start` and `end` uploads",
                             "missing" if seeds is None else "value_error")
        if uploads and len(uploads) != 2:
            raise FieldError("end" if "start" in uploads else "start", "upload both `start` and `end`", "missing")
        model = self.registry.get("vae")
        if seeds is not None:
            ends = await self._call_generators("points", model="vae", seeds=seeds)
        else:
            pictures = await run_in_threadpool(_prepare_digits, uploads)
            ends = await self._call_generators("encode", model="vae", pictures=pictures)
        strip = await self._call_generators("decode", model="vae", z=generation.interpolate(ends[0], ends[1], frames))
        return Response(images.png(images.grid(strip, columns=frames)), media_type="image/png",
                        headers={"X-Model": f"{model.name} {model.card.version}"})


# The gateway is the API worker's one per-request layer (ids, key, body, slots, deadline, error
# shape, metrics; /v2 and the async JSON endpoints called from it directly); the generation paths
# then go on through CancelWhenGone, which stops their work when the client goes.
ZooServe.add_asgi_middleware(gateway.Gateway, apis=ZooServe.apis, settings=SETTINGS,
                             limits={"predict": SETTINGS.max_concurrency, "generation": SETTINGS.max_generations},
                             direct_exclude=lambda path: path.startswith(GENERATION_PREFIX))
ZooServe.add_asgi_middleware(CancelWhenGone, applies=lambda path: path.startswith(GENERATION_PREFIX))
Generators.add_asgi_middleware(CancelWhenGone, applies=lambda path: path == "/sample")
