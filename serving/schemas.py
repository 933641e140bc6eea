"""Pydantic schemas of every request and response; the OpenAPI page is generated from them."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema

from serving.repository.card import MAX_INTERVAL_LEVEL, MAX_SEED
from serving.repository.catalog import DIGIT_MODELS, DIGITS_MODEL

# Strict: "8.3" or true is a client bug to report, not a value to coerce. NaN/Infinity rejected.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _integral(value: object) -> object:
    """4.0 is the integer 4 to JSON Schema (and to clients generated from the OpenAPI document)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def integer(**bounds: int) -> Any:
    """An integer field type that takes 4.0 as 4 and still refuses 4.5, "4" and true. The bounds
    go before the validator: after it, pydantic cannot write them into the JSON Schema."""
    return Annotated[int, Field(strict=True, **bounds), BeforeValidator(_integral)]


def interval_level(description: str) -> Any:
    """The ``level`` field of the endpoints that answer with prediction intervals."""
    return Field(0.9, ge=0.5, le=MAX_INTERVAL_LEVEL, description=description)


def _version_text(value: object) -> object:
    """Version 3 is the version "3": versions are strings in URLs and answers, numbers to people."""
    value = _integral(value)  # 3.0 is the integer 3 to JSON Schema
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


VERSION_NOTE = ("the model version to answer with: one loaded (GET /models lists them); default: the pinned one, "
                "else the newest")
Version = Annotated[str | None, Field(min_length=1, max_length=64), BeforeValidator(_version_text),
                    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1, "maxLength": 64},
                                              {"type": "integer", "minimum": 0}, {"type": "null"}],
                                    "description": VERSION_NOTE})]


class NoBody(BaseModel):
    """A body that carries nothing: any JSON object is taken and ignored."""

    model_config = ConfigDict(extra="ignore")


class ModelInfo(BaseModel):
    name: str
    version: str
    sha256: str


class Answer(BaseModel):
    """What every logged endpoint answers besides its own fields: the id of the answer in the
    prediction log, and what the log reads from it (its outputs, the values or labels feedback is
    scored against, and the out-of-distribution score and flag)."""

    prediction_id: str | None = Field(None, description=(
        "this answer's id in the prediction log, to send with POST /feedback (also the X-Prediction-ID "
        "header); none when the server keeps no log"))
    model: ModelInfo
    # Its items join the model's drift window (an explanation repeats a prediction's: not twice).
    drift_window: ClassVar[bool] = True

    def logged_outputs(self, sent: str) -> str:
        """The answer as the prediction log keeps it, JSON: by default as it was ``sent``."""
        return sent

    def predicted(self) -> list[Any] | None:
        """The answer's values or labels, one per item asked about (None: nothing to score)."""
        return None

    def flags(self) -> list["OutOfDistribution | None"]:
        """Each item's out-of-distribution verdict (none where the model has no novelty graph)."""
        return []

    def novelty(self) -> tuple[float | None, bool | None]:
        """The highest score and whether any item was flagged (None, None without a verdict)."""
        verdicts = [verdict for verdict in self.flags() if verdict is not None]
        if not verdicts:
            return None, None
        return max(v.score for v in verdicts), any(v.flagged for v in verdicts)


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
    version: Version = None
    level: float = interval_level(
        "the prediction interval's coverage: the share of houses whose true value it holds (split conformal)")


class OutOfDistribution(BaseModel):
    """Whether the input looks like what the model was trained on (none for a model exported without it)."""

    score: float = Field(description=(
        "Mahalanobis distance of the input's features to the nearest class of the training data"))
    threshold: float = Field(description="scores above it are flagged (the model card gives how it was set)")
    flagged: bool = Field(description="the score is above the threshold, or a feature is outside its training range")
    outside_training_range: list[str] = Field([], description="features beyond the training rows' range (houses)")


class HousePrice(BaseModel):
    value: float = Field(description="predicted median house value, $100k")
    price_usd: float
    interval: tuple[float, float] | None = Field(None, description=(
        "[low, high] in $100k, holding the true value with probability `level` (none for a model exported "
        "without interval calibration)"))
    interval_usd: tuple[float, float] | None = None
    out_of_distribution: OutOfDistribution | None = None


class HousePriceResponse(Answer):
    predictions: list[HousePrice]
    level: float = Field(description="the intervals' coverage level")

    def predicted(self) -> list[Any]:
        return [house.value for house in self.predictions]

    def flags(self) -> list[OutOfDistribution | None]:
        return [house.out_of_distribution for house in self.predictions]


MAX_EXPLAINED_HOUSES = 8  # each costs 8,192 predictions (256 coalitions x 32 background rows)


class HouseExplainRequest(HousePriceRequest):
    """The body of ``/house-price/predict``, with fewer houses: explanations are costly."""

    houses: list[House] = Field(min_length=1, max_length=MAX_EXPLAINED_HOUSES, examples=[[EXAMPLE_HOUSE.model_dump()]])


class HouseExplanation(BaseModel):
    value: float = Field(description="the prediction, $100k")
    baseline: float = Field(description="the mean prediction over the background rows, $100k")
    attributions: dict[str, float] = Field(description=(
        "each feature's share of value - baseline, $100k (they add up to it): exact Shapley values"))


class HouseExplainResponse(Answer):
    drift_window = False
    explanations: list[HouseExplanation]
    method: str = Field(description="how the attributions were computed (the model card gives their measured error)")

    def predicted(self) -> list[Any]:
        return [house.value for house in self.explanations]


# The first 25 months of the series (1949-01 to 1951-01): one window of the served model.
EXAMPLE_HISTORY = [112.0, 118.0, 132.0, 129.0, 121.0, 135.0, 148.0, 148.0, 136.0, 119.0, 104.0, 118.0, 115.0,
                   126.0, 141.0, 135.0, 125.0, 149.0, 170.0, 170.0, 158.0, 133.0, 114.0, 140.0, 145.0]


MIN_PASSENGERS, MAX_PASSENGERS = 1e-3, 1e9  # thousands


class ForecastRequest(BaseModel):
    """Consecutive monthly values, oldest first; the forecast starts the month after the last one."""

    model_config = STRICT
    # Bounded so that every ratio of two months stays finite in the graph's float32 logarithms.
    history: list[Annotated[float, Field(ge=MIN_PASSENGERS, le=MAX_PASSENGERS)]] | None = Field(
        None, max_length=1200, examples=[EXAMPLE_HISTORY],
        description="monthly passengers (thousands), at least the model's window (see the card); "
                    "default: the 144 months 1949-01 to 1960-12")
    horizon: integer(ge=1, le=36) = Field(12, description="months to forecast")
    version: Version = None
    level: float = interval_level(
        "the prediction intervals' target coverage: the share of forecast months whose actual value they "
        "hold (conformal, calibrated on the validation period; the card gives the coverage measured on 1959-1960)")


class ForecastResponse(Answer):
    forecast: list[float] = Field(description="passengers (thousands), from the month after the history's last")
    intervals: list[tuple[float, float]] | None = Field(None, description=(
        "[low, high] in thousands for each forecast month, widening with the horizon (none for a model "
        "exported without forecast calibration)"))
    level: float = Field(description="the intervals' coverage level")

    def predicted(self) -> list[Any]:
        return list(self.forecast)


MNIST_SIDE = 28
Pixel = Annotated[float, Field(ge=0, le=255, strict=True, allow_inf_nan=False)]
Pixels = Annotated[list[Annotated[list[Pixel], Field(min_length=MNIST_SIDE, max_length=MNIST_SIDE)]],
                   Field(min_length=MNIST_SIDE, max_length=MNIST_SIDE, description="28 rows of 28 gray values, 0-255")]


class FileField:
    """Marks a form field that only a multipart file upload fills (``file_fields`` finds them)."""


# An uploaded file's bytes. Any content type: clients often send images as
# application/octet-stream; decoding decides.
Upload = Annotated[bytes, FileField(), WithJsonSchema({"type": "string", "format": "binary"})]
PICTURE = "a picture: PNG, JPEG, BMP or GIF, any size, polarity or colour"


def file_fields(form: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a form that take file uploads."""
    return tuple(name for name, field in form.model_fields.items()
                 if any(isinstance(marker, FileField) for marker in field.metadata))


DigitModel = Annotated[Literal[DIGIT_MODELS], Field(
    description=f"the classifier: {DIGITS_MODEL} (default, a CNN) or a classical one (see the README's comparison)")]


class DigitUpload(BaseModel):
    """``/digits/classify``'s multipart form (its JSON form is ``DigitPixels``)."""

    model_config = ConfigDict(extra="forbid")
    image: Upload = Field(description=PICTURE)
    model: DigitModel = DIGITS_MODEL
    version: Version = None


class DigitParity(BaseModel):
    label: Literal["odd", "even"]
    probability: float


class DigitResponse(Answer):
    digit: int
    probabilities: list[float] = Field(description=(
        "P(0) ... P(9); the CNN's are calibrated (temperature scaling on the validation slice: of the "
        "answers given with confidence p, about p are right; the model card gives the measured ECE)"))
    parity: DigitParity
    out_of_distribution: OutOfDistribution | None = Field(None, description=(
        "whether the picture looks like a handwritten digit at all, to the CNN (none for the classical models)"))

    def predicted(self) -> list[Any]:
        return [self.digit]

    def flags(self) -> list[OutOfDistribution | None]:
        return [self.out_of_distribution]


class OcclusionMap(BaseModel):
    patch: int = Field(description="side of the square painted over the digit, pixels")
    stride: int = Field(description="pixels between neighbouring placements of the square")
    values: list[list[float]] = Field(description=(
        "28 rows of 28: the mean fall in the predicted digit's probability when the pixel is covered "
        "(positive: evidence for the digit)"))
    png: str = Field(description="base64 PNG, 280x280: the digit in gray, red where it is evidence, blue against")


class DigitExplanation(Answer):
    drift_window = False
    digit: int = Field(description="the predicted digit, which the map explains")
    probability: float
    occlusion: OcclusionMap

    def logged_outputs(self, sent: str) -> str:
        return self.model_dump_json(include={"digit", "probability"})  # the map is the input's, recomputable

    def predicted(self) -> list[Any]:
        return [self.digit]


DEFAULT_TOP_K = 3


class ImageUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: Upload = Field(description="a photo: PNG, JPEG, BMP or GIF")
    top_k: integer(ge=1) | None = Field(None, description="labels to return: at most the number of classes; "
                                                       f"default {DEFAULT_TOP_K} or every class if fewer")
    version: Version = None


class LabelProbability(BaseModel):
    label: str
    probability: float = Field(description="calibrated (temperature scaling on the validation slice)")


class ImageResponse(Answer):
    predictions: list[LabelProbability]
    out_of_distribution: OutOfDistribution | None = Field(None, description=(
        "whether the photo looks like the training photos (ants and bees): a flagged photo's labels mean little"))

    def predicted(self) -> list[Any]:
        return [self.predictions[0].label]

    def flags(self) -> list[OutOfDistribution | None]:
        return [self.out_of_distribution]


MAX_IMAGES = 64


class UnconditionalRequest(BaseModel):
    """Digits from an unconditional generative model. The same request with the same seed gives
    the same bytes."""

    model_config = STRICT
    n: integer(ge=1, le=MAX_IMAGES) = Field(description="how many digits", examples=[16])
    seed: integer(ge=0, le=MAX_SEED) | None = Field(None, description="default: a fresh one, named in the answer")
    format: Literal["png", "json"] = Field("png", description="png: one image/png grid; json: base64 PNGs")
    version: Version = None


class GenerateRequest(UnconditionalRequest):
    """Digits from a generative model, optionally all of one requested digit (the VAE and the GAN
    are unconditional: their class-conditional twins, ``vae-conditional`` and ``gan-conditional``,
    draw a requested digit, and the answer names the model that drew). The same request with the
    same seed gives the same bytes."""

    digit: integer(ge=0, le=9) | None = Field(None, description="the digit to draw (default: any)")


class DiffusionRequest(GenerateRequest):
    """Digits from the class-conditional diffusion model, optionally all of one requested digit."""

    steps: integer(ge=1, le=1000) | None = Field(None, description=(
        "DDIM denoising steps: fewer is faster, more is finer (default: the model card's, 50)"))
    guidance: float | None = Field(None, ge=0, le=20, description=(
        "classifier-free guidance scale (with a digit): 0 unconditional, 1 conditional, more is stricter "
        "(default: the model card's, chosen on validation FID)"))
    eta: float | None = Field(None, ge=0, le=1, description=(
        "noise each step adds: 0 deterministic DDIM (the default), 1 DDPM's ancestral sampling; seeded too"))


class GeneratedImages(Answer):
    images: list[str] = Field(description="one base64-encoded 28x28 grayscale PNG per digit")
    seed: int

    def logged_outputs(self, sent: str) -> str:
        return json.dumps({"seed": self.seed, "images": len(self.images)})  # the seed and parameters redraw them


class JobProgress(BaseModel):
    done: int
    total: int
    unit: Literal["steps", "images"] = Field(description="DDIM steps (diffusion), or images (VAE, GAN)")


class JobState(BaseModel):
    """A generation job: its state, progress and where its result and events are."""

    id: str = Field(description="the job's id: 128 random bits, the only way to reach it")
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: JobProgress
    seconds_left: float | None = Field(description="estimated, at the pace so far (or the last job's)")
    error: str | None = Field(description="why a failed job failed")
    preview_at: int | None = Field(description="the progress the latest preview shows (diffusion)")
    expires_in: float | None = Field(description="seconds until a finished job's result is no longer kept (then 410)")
    discarded: bool = Field(description="its result was deleted (DELETE on a finished job)")
    family: Literal["vae", "gan", "wgan-gp", "diffusion"]
    model: ModelInfo
    seed: int
    format: Literal["png", "json"]
    prediction_id: str | None = Field(None, description=(
        "the submission's id in the prediction log (its parameters and seed), to send with POST /feedback; "
        "none when the server keeps no log"))
    location: str
    events: str = Field(description="its progress as server-sent events")
    result: str | None = Field(description="where the digits are, once done")
    preview: str | None = Field(None, description="in a progress event with preview=true: a base64 PNG grid of "
                                                  "the digits predicted at that step")


Seeds = Annotated[list[integer(ge=0, le=MAX_SEED)],
                  Field(min_length=2, max_length=2, examples=[[1, 2]], description="the two ends' latent seeds")]
DEFAULT_FRAMES = 8  # or ZOOSERVE_MAX_IMAGES if lower
Frames = Annotated[integer(ge=2, le=MAX_IMAGES), Field(description=(
    f"images in the strip, both ends included (default {DEFAULT_FRAMES}, or the server's image limit if lower)"))]


class InterpolationUploads(BaseModel):
    """``/generate/vae/interpolate``'s multipart form: the encodings of two digit pictures are the ends."""

    model_config = ConfigDict(extra="forbid")
    start: Upload = Field(description=f"the first digit: {PICTURE}")
    end: Upload = Field(description=f"the last digit: {PICTURE}")
    frames: Frames | None = None
    version: Version = None


# A "1": a stroke two pixels wide down the middle of the 28x28 square, white on black as MNIST.
EXAMPLE_PIXELS = [[255.0 if 4 <= row < 24 and col in (13, 14) else 0.0 for col in range(MNIST_SIDE)]
                  for row in range(MNIST_SIDE)]


class DigitPixels(BaseModel):
    """``/digits/classify``'s JSON form (its multipart form is ``DigitUpload``)."""

    model_config = STRICT
    pixels: Pixels
    model: DigitModel = DIGITS_MODEL
    version: Version = None


class InterpolationSeeds(BaseModel):
    """``/generate/vae/interpolate``'s JSON form (its multipart form is ``InterpolationUploads``)."""

    model_config = STRICT
    seeds: Seeds
    frames: Frames | None = None
    version: Version = None


# --- documented answers that no endpoint builds through pydantic ---------------------------------


NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold a NUL character
Truth = int | Annotated[float, Field(allow_inf_nan=False)] | Annotated[str, Field(min_length=1, max_length=200,
                                                                                  pattern=NO_NUL)]
PREDICTION_IDS = r"^[A-Za-z0-9_-]{1,32}$"


class FeedbackRequest(BaseModel):
    """What a person says the right answer to a logged prediction was."""

    model_config = STRICT
    prediction_id: str = Field(pattern=PREDICTION_IDS, description="the answer's prediction_id (X-Prediction-ID)",
                               examples=["019af8e2c4a14e0b7d2c95f3a8e61b07"])
    truth: Truth | Annotated[list[Truth], Field(min_length=1, max_length=1000)] = Field(description=(
        "the true value or label: one per item the answer gave (a house's value in $100k, a digit, a photo's "
        "label, a month's passengers); a single value for a one-item answer"), examples=[7])
    comment: str | None = Field(None, max_length=2000, pattern=NO_NUL,
                                description="why the answer was wrong, in the person's words")


class FeedbackReceipt(BaseModel):
    feedback_id: int
    prediction_id: str


class LiveMetrics(BaseModel):
    """A model's quality on the answers people gave feedback on (the newest feedback per answer)."""

    model: str
    task: str
    answers: int = Field(description="logged answers of this model with feedback")
    items: int = Field(description="values or labels compared (an answer about several houses has several)")
    mismatched: int = Field(description="feedback whose number of values differs from the answer's: not scored")
    accuracy: float | None = Field(None, description="classifiers: the share of items whose label was right")
    rmse: float | None = Field(None, description="regressors and the forecaster: root mean squared error")
    mae: float | None = Field(None, description="regressors and the forecaster: mean absolute error")


class DriftItems(BaseModel):
    flags: int = Field(description="items with an out-of-distribution verdict")
    features: int = Field(description="rows of features (the house models)")
    labels: int = Field(description="predicted labels (the classifiers)")


class DriftReport(BaseModel):
    """A model's drift over the newest ``window`` items it answered (this API worker's, since it started)."""

    model: str
    version: str | None = Field(description=(
        "the default version the window compares with (its training data); a new default starts a new window"))
    window: int = Field(description="the window's size: ZOOSERVE_DRIFT_WINDOW items")
    items: DriftItems
    ood_flag_rate: float | None = Field(description="share of the items flagged out of distribution")
    psi: dict[str, float] = Field(description=(
        "population stability index against the training data, per feature (the house models) and for the "
        "predicted classes (predicted_class, the classifiers): < 0.1 stable, 0.1-0.2 a shift, > 0.2 drift"))
    predicted_class_shares: dict[str, float] | None = Field(description="the window's predicted classes")
    training_class_shares: dict[str, float] | None = Field(description="the training labels' classes")
    flags_by_minute: list[tuple[int, int, int]] = Field(description=(
        "the last two hours, per minute with answers: [minute's start (Unix seconds), items with a verdict, "
        "items flagged out of distribution]"))


class ErrorDetail(BaseModel):
    field: str = Field(description="the part of the request at fault, dotted (houses.0.MedInc)")
    message: str
    type: str = Field(description="pydantic's error type (missing, less_than_equal, ...) or value_error")


class Error(BaseModel):
    """Every refusal, whatever its status and route: ``error`` for people, ``detail`` for programs."""

    error: str = Field(description="what was wrong, naming the field")
    detail: list[ErrorDetail] | None = Field(None, description="one entry per wrong field, when fields are at fault")


class ModelListing(BaseModel):
    """A loaded model, or (during a first run) one still to come: then only name, state, progress,
    seconds_left and, where its training failed, error."""

    name: str
    state: Literal["loaded", "queued", "training", "loading", "failed"]
    version: str | None = Field(None, description="the version requests that name none get")
    versions: list[str] | None = Field(None, description="every version loaded, oldest first")
    pinned: str | None = Field(None, description="the version pinned (ZOOSERVE_VERSIONS or a load's "
                                                 "default_version), if any")
    sha256: str | None = None
    task: str | None = None
    profile: Literal["quick", "full"] | None = None
    metrics: dict[str, float] | None = Field(None, description="the card's headline test metrics")
    labels: list[str] | None = None
    graph: str | None = Field(None, description="which graph serves (fp32 or its int8 copy) and why, on this CPU")
    progress: float | None = Field(None, description="of a model still training: the share done, by its estimate")
    seconds_left: float | None = Field(None, description="of a model still to come: the time it still needs")
    error: str | None = None


# The Open Inference Protocol's REST messages (KServe v2 / Triton); ``oip`` parses them by hand
# (its binary extension puts raw tensor bytes after the JSON), these document them.
Datatype = Literal["BOOL", "UINT8", "INT32", "INT64", "FP16", "FP32", "FP64"]


class ModelListings(RootModel[list[ModelListing]]):
    """``GET /models``: the loaded models, then, in a first run, those still to come."""


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1: any size")


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, object]


class Liveness(BaseModel):
    live: bool


class Readiness(BaseModel):
    ready: bool


class ModelReadiness(BaseModel):
    name: str
    ready: bool


class ManagementRequest(BaseModel):
    """A body of the model repository extension: as Triton's clients send it, nothing else."""

    model_config = STRICT


class RepositoryIndexRequest(ManagementRequest):
    ready: bool = Field(False, description="only the versions ready to serve")


class RepositoryEntry(BaseModel):
    name: str
    version: str
    state: Literal["READY", "UNAVAILABLE"]
    reason: str | None = Field(None, description="why a version is not ready: not loaded, or its load's failure")


class RepositoryIndex(RootModel[list[RepositoryEntry]]):
    """Every version published under the models directory, with its state."""


class LoadParameters(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # Triton's "file:<path>" overrides: refused, naming them
    config: str | None = Field(None, description="a Triton model configuration as JSON text; its version_policy "
                                                 "picks the versions to load: latest (num_versions), all, or "
                                                 "specific (versions)")
    default_version: str | None = Field(None, description=(
        "ZooServe's: pins the version requests naming none get (loaded with the policy's); null: the newest "
        "loaded again; absent: as it was"))


class LoadRequest(ManagementRequest):
    parameters: LoadParameters | None = Field(None, description="none: the versions the model's last load picked "
                                                                "(at first, the newest)")


class UnloadParameters(ManagementRequest):
    unload_dependents: bool = Field(False, description="accepted; no model here depends on another")


class UnloadRequest(ManagementRequest):
    parameters: UnloadParameters | None = None


class Loaded(BaseModel):
    name: str
    versions: list[str] = Field(description="the versions now served, oldest first")
    default_version: str | None = Field(None, description="the version requests naming none get: the pinned "
                                                          "one, else the newest")
    pinned: str | None = Field(None, description="the pinned version, if any")


class InferenceInput(BaseModel):
    name: str = Field(description="one of the model's inputs (its metadata lists them)")
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: Datatype
    parameters: dict[str, object] | None = Field(
        None, description="binary_data_size: the tensor's bytes follow the JSON (binary tensor data extension)")
    data: list[object] | None = Field(None, description="row-major values, flat or nested")


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, object] | None = Field(None, description="binary_data: answer this output as bytes")


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, object] | None = Field(None, description="binary_data_output: every output as bytes")
    inputs: list[InferenceInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


class InferenceOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, object] | None = None
    data: list[object] | None = None


class InferenceResponseParameters(BaseModel):
    prediction_id: str = Field(description=(
        "this answer's id in the prediction log, to send with POST /feedback (also the X-Prediction-ID header)"))


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferenceOutput]
    parameters: InferenceResponseParameters | None = Field(None, description="present when the server keeps a "
                                                           "prediction log")
