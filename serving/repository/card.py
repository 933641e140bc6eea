"""The model card: the one contract between training (which writes it) and serving (which reads it).

``training/export.py`` validates every card against ``Card`` before writing it, and the registry
validates every card at start-up, so a renamed or missing field stops the export or the server
with the field's path, never a request. Fields serving does not read (hyperparameters,
validation histories, ...) are kept as extras, unvalidated.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

SCHEMA_VERSION = 1  # a card this module cannot read is a new version: bump it with the change
MAX_INTERVAL_LEVEL = 0.99
MAX_SEED = 2**32 - 1  # the seeds a sampler takes: NumPy seeds a generator from one 32-bit word
# With n calibration rows the rank ceil((n + 1) a) stays within n for every level a up to 0.99.
MIN_CALIBRATION_ROWS = 99
# "onnx-model": a graph trained elsewhere, added with ``python -m serving.add``, served on /v2 only.
TASKS = ("tabular-regression", "time-series-forecasting", "image-classification", "image-generation", "onnx-model")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tensor(Strict):
    name: str
    # NumPy's names of the types serving.protocol.oip carries (its DATATYPES): a card with another would fail at /v2.
    dtype: Literal["bool", "uint8", "int32", "int64", "float16", "float32", "float64"]
    shape: list[int]  # -1: any size
    unit: str = ""


class Graph(Strict):
    file: str = Field(pattern=r"^[\w.-]+\.onnx$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int | None = None  # the file's size (cards written before it was recorded have none)
    opset: int
    inputs: list[Tensor] = Field(min_length=1)
    outputs: list[Tensor] = Field(min_length=1)
    parity: dict[str, Any]


class VariantCheck(Strict):
    """Rows the registry reruns through a variant on the CPU that serves it (``serving.repository.variants``):
    the graph's inputs and the fp32 graph's scores on them, in ``file``."""

    file: str = Field(pattern=r"^[\w.-]+\.npz$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tie_tolerance: float = Field(ge=0)
    max_flip_fraction: float = Field(ge=0, lt=1)


class Variant(Graph):
    """Another file for the graph ``of`` (a static int8 copy): same inputs and outputs, its own metrics."""

    of: str
    metrics: dict[str, Any]
    check: VariantCheck | None = None  # cards exported before the check was stored have none


class ProbabilityCalibration(BaseModel):
    """Temperature scaling: class probabilities are softmax(logits / temperature). The fit's
    evidence (validation rows, test ECE and NLL before and after, the plot) is kept as extras."""

    model_config = ConfigDict(extra="allow", frozen=True)
    method: Literal["temperature"]
    temperature: float = Field(gt=0)


class Novelty(BaseModel):
    """Out-of-distribution flags: the ``graph`` maps the model's features (a house's raw features
    for tabular models) to a Mahalanobis distance; above ``threshold`` an input is flagged, and so
    is a house with a feature outside its training ``ranges``. The evidence (the share of held-out
    inputs flagged, AUROC against foreign inputs) is kept as extras."""

    model_config = ConfigDict(extra="allow", frozen=True)
    method: Literal["mahalanobis"]
    graph: str
    threshold: float
    ranges: dict[str, tuple[float, float]] | None = None


class ShapleyExplanation(BaseModel):
    """Exact interventional Shapley values against the ``background`` rows (``weights``: the share
    of the training rows each stands for; ``serving.inference.explain.shapley``). Its measured error is kept
    as extras."""

    model_config = ConfigDict(extra="allow", frozen=True)
    method: Literal["interventional-shapley"]
    background: list[list[float]] = Field(min_length=1)
    weights: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_weight_per_row(self) -> ShapleyExplanation:
        if len(self.weights) != len(self.background):
            raise ValueError("explanation: one weight per background row")
        return self


class Schedule(Strict):
    kind: Literal["linear"]
    train_steps: int = Field(gt=0)
    beta_start: float = Field(gt=0)
    beta_end: float = Field(gt=0, lt=1)


class Prior(Strict):
    """A graph that turns standard-normal noise ``input`` of ``noise_dim`` into latent points: a
    prior richer than the N(0, I) the decoder was trained against (the VAE's mixture fitted to its
    training codes)."""

    graph: str
    input: str
    noise_dim: int = Field(gt=0)


class LatentSampling(Strict):
    """A decoder or generator fed latents ``input`` of ``latent_dim``: standard-normal draws, or
    those draws through the ``prior`` graph. A class-conditional one also takes the digit of each
    sample as ``label_input`` (int64); a self-conditioned one (an unconditional generator trained
    on clusters of the images, no digit labels) takes a cluster there, drawn with ``label_weights``."""

    kind: Literal["latent"]
    input: str
    latent_dim: int = Field(gt=0)
    output_range: tuple[float, float]
    prior: Prior | None = None
    label_input: str | None = None
    label_weights: list[Annotated[float, Field(ge=0)]] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _weights_need_an_input(self) -> LatentSampling:
        if self.label_weights is not None and (self.label_input is None or abs(sum(self.label_weights) - 1) > 1e-6):
            raise ValueError("label_weights: needs label_input, and must add up to 1")
        return self


class DDIMSampling(Strict):
    """DDIM steps over a noise schedule, with classifier-free guidance for a requested digit."""

    kind: Literal["ddim"]
    schedule: Schedule
    default_steps: int = Field(gt=0)
    default_guidance: float = Field(ge=0)
    null_label: int
    output_range: tuple[float, float]

    def resolved(self, steps: int | None = None, guidance: float | None = None) -> tuple[int, float]:
        """The steps and guidance a sample is drawn with: the card's defaults for those left out."""
        return (self.default_steps if steps is None else steps,
                self.default_guidance if guidance is None else guidance)


class IntervalCalibration(Strict):
    """Split-conformal prediction intervals: the model's absolute errors on calibration rows it
    was not fitted on, sorted. At level a, the interval is the prediction +- the
    ceil((n + 1) a)-th smallest of them, which covers a new row with probability >= a."""

    method: Literal["split-conformal"]
    residuals: list[float] = Field(min_length=MIN_CALIBRATION_ROWS)

    def half_width(self, level: float) -> float:
        return conformal_quantile(self.residuals, level)


class ForecastCalibration(Strict):
    """Conformal intervals for recursive forecasts, on the log scale: relative errors, since the
    series grows. ``scores`` are |log(actual / forecast)| / h^p of every month forecast h months
    ahead from rolling origins over a period the model was not fitted on, sorted. At level a and
    horizon h the interval is forecast * exp(-+ h^p q), q the ceil((n + 1) a)-th smallest score.
    Dividing by h^p pools all horizons into one set of scores (the few of each horizon alone would
    not do): the spread of a recursive forecast's error grows with the horizon, and how fast
    depends on the model, so ``exponent`` p is fitted to the same errors (0: no growth, 1/2: a
    random walk's, 1: a steady drift). Forecasts from neighbouring origins overlap, so the scores
    are not exchangeable and ``a`` is a target, not a guarantee: the card's metrics hold the
    coverage measured on the test period."""

    method: Literal["rolling-origin-conformal"]
    exponent: float = Field(ge=0, le=1)
    scores: list[float] = Field(min_length=MIN_CALIBRATION_ROWS)

    def half_width(self, level: float, horizon: int) -> float:
        """The interval's half-width in log passengers, ``horizon`` months ahead."""
        return horizon ** self.exponent * conformal_quantile(self.scores, level)


def conformal_quantile(scores: list[float], level: float) -> float:
    """The ceil((n + 1) level)-th smallest of ``scores`` (sorted): the conformal quantile."""
    return scores[math.ceil((len(scores) + 1) * level) - 1]


Sampling = Annotated[Union[LatentSampling, DDIMSampling], Field(discriminator="kind")]
_sampling = TypeAdapter(Sampling)


def sampling_of(data: dict[str, Any] | LatentSampling | DDIMSampling) -> LatentSampling | DDIMSampling:
    """A card's ``sampling`` section, typed (tools that read card JSON directly use this)."""
    return data if isinstance(data, (LatentSampling, DDIMSampling)) else _sampling.validate_python(data)


class Card(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: Literal[SCHEMA_VERSION]
    name: str = Field(pattern=r"^[a-z0-9-]+$")
    version: str
    task: Literal[TASKS]
    profile: Literal["quick", "full"] | None = None  # the training profile; none for an added model
    graphs: dict[str, Graph]
    metrics: dict[str, Any]
    preprocessing: dict[str, Any] = {}
    labels: list[str] | None = None
    conditional: bool = False
    sampling: Sampling | None = None
    series: dict[str, Any] | None = None
    interval_calibration: IntervalCalibration | None = None
    forecast_calibration: ForecastCalibration | None = None
    probability_calibration: ProbabilityCalibration | None = None
    novelty: Novelty | None = None
    explanation: ShapleyExplanation | None = None
    variants: dict[str, Variant] = {}
    served_variant: str | None = None  # which variant the service runs in its graph's place (None: the graph)

    @model_validator(mode="after")
    def _what_each_task_serves(self) -> Card:
        if "model" not in self.graphs:
            raise ValueError("graphs: every card has a 'model' graph")
        for key, variant in self.variants.items():
            graph = self.graphs.get(variant.of)
            if graph is None or (variant.inputs, variant.outputs) != (graph.inputs, graph.outputs):
                raise ValueError(f"variants.{key}: must have the inputs and outputs of a graph of this card")
        label_input = getattr(self.sampling, "label_input", None)
        if label_input is not None and label_input not in {spec.name for spec in self.graphs["model"].inputs}:
            raise ValueError(f"sampling.label_input: {label_input!r} is not an input of the model graph")
        if self.conditional and isinstance(self.sampling, LatentSampling) and (
                label_input is None or self.sampling.label_weights is not None):
            raise ValueError("sampling.label_input: a conditional latent model takes the digit there")
        prior = getattr(self.sampling, "prior", None)
        if prior is not None and prior.graph not in self.graphs:
            raise ValueError(f"sampling.prior.graph: {prior.graph!r} is not among the graphs")
        if self.novelty is not None and self.novelty.graph not in self.graphs:
            raise ValueError(f"novelty.graph: {self.novelty.graph!r} is not among the graphs")
        if self.served_variant is not None and self.served_variant not in self.variants:
            raise ValueError(f"served_variant: {self.served_variant!r} is not among the variants")
        needs = {"image-generation": ("sampling",), "image-classification": ("labels",),
                 "time-series-forecasting": ("series",)}.get(self.task, ())
        missing = [field for field in needs if getattr(self, field) is None]
        if self.task != "onnx-model" and self.profile is None:
            missing.append("profile")
        if missing:
            raise ValueError(f"{self.task} cards need {', '.join(missing)}")
        return self

    @property
    def served_graphs(self) -> dict[str, Graph]:
        """The file each graph role is served from: the served variant in its graph's place."""
        if self.served_variant is None:
            return self.graphs
        variant = self.variants[self.served_variant]
        return {**self.graphs, variant.of: variant}

    @property
    def sha256(self) -> str:
        """The served model graph's hash: what each answer says it came from."""
        return self.served_graphs["model"].sha256


class CardError(ValueError):
    """A card that is not the contract; the message names each wrong field."""


def validate(data: Any, where: str) -> Card:
    try:
        return Card.model_validate(data)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(str(part) for part in issue['loc']) or 'card'}: {issue['msg']}"
                           for issue in error.errors())
        raise CardError(f"{where}: the model card is not schema version {SCHEMA_VERSION} ({fields}); "
                        f"re-export the model with `make train`") from None


def refusing(where: str, refusal: type[Exception]) -> Callable[[dict[str, Any]], None]:
    """``validate`` as the check of a card about to be written (``layout.publish``): one serving
    would refuse raises ``refusal`` with its fields, and is never written."""
    def check(card: dict[str, Any]) -> None:
        try:
            validate(json.loads(json.dumps(card)), where)
        except CardError as error:
            raise refusal(str(error)) from None
    return check
