"""Monthly airline passengers: an autoregressive MLP against the baselines a forecaster tries first.

The series (1949-01 to 1960-12) is split in time: the network fits 1949-1956, stops early on
1957-1958 (the validation slice) and is tested on 1959-1960, which no scaler or model ever sees.
Every forecast is recursive, each prediction fed back into the window, and the card's metrics
come from running the exported graph that way through ``serving.inference.forecast``, as the service does.
Prediction intervals are calibrated on the validation slice's forecasts from rolling origins
(``serving.repository.card.ForecastCalibration``) and their coverage measured on the test period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from serving.inference.forecast import Step, forecast_intervals, recursive_forecast, session_step
from serving.repository.card import ForecastCalibration

from . import metrics, plots
from .data import load_passengers
from .export import Graph, Sessions, torch_writer
from .loop import FitResult, Fits, fit, seed_everything
from .template import Recipe

NAME = "passengers"
INPUT, OUTPUT = "window", "next"
UNITS = {INPUT: "monthly passengers (thousands), oldest first", OUTPUT: "passengers (thousands), the next month"}
SEASON = 12
TEST_MONTHS = 24
VALIDATION_MONTHS = 24
INTERVAL_LEVELS = (0.8, 0.9, 0.95)
PLOTTED_LEVEL = 0.9
HORIZON_BANDS = ((1, 6), (7, 12), (13, 24))  # months ahead, for the test coverage by horizon


@dataclass(frozen=True)
class Profile:
    members: int  # MLPs averaged inside the graph, one seed each
    epochs: int
    patience: int
    window: int = 25  # the forecast month one and two years back, and every month between
    hidden: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-2


PROFILES = {
    "quick": Profile(members=2, epochs=300, patience=100),
    "full": Profile(members=5, epochs=3000, patience=300),
}


def _periods(length: int) -> tuple[int, int]:
    """Where the validation slice and the test period start: the last 24 months, and the 24 before."""
    test_start = length - TEST_MONTHS
    return test_start - VALIDATION_MONTHS, test_start


# --- baselines --------------------------------------------------------------------------------


def seasonal_naive(history: np.ndarray, horizon: int) -> np.ndarray:
    """Each month as it was in the last observed year."""
    return np.resize(np.asarray(history, np.float64)[-SEASON:], horizon)


def seasonal_linear(history: np.ndarray, horizon: int) -> np.ndarray:
    """Least squares on log passengers: a linear trend plus one level per calendar month."""
    month = np.arange(len(history) + horizon)
    design = np.column_stack([np.ones(len(month)), month, *(month % SEASON == k for k in range(1, SEASON))])
    coef, *_ = np.linalg.lstsq(design[:len(history)], np.log(history), rcond=None)
    return np.exp(design[len(history):] @ coef)


# --- network ----------------------------------------------------------------------------------


def windows_and_next(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every run of ``window`` consecutive months (float32 [n, window]) and the month after each."""
    starts = np.arange(len(values) - window)
    windows = np.stack([values[i:i + window] for i in starts]).astype(np.float32)
    return windows, values[starts + window].astype(np.float32)


class WindowScaling(nn.Module):
    """Raw window -> level-free inputs, and a scaled log step -> the next month's passengers.

    Inputs are each month's log relative to the newest month, so a window reads the same whether
    a year averages 150 or 450 thousand passengers: the network extrapolates the growing series
    and its growing seasonal swings. MinMax constants come from the fit slice only (buffers).
    """

    def __init__(self, windows: np.ndarray, following: np.ndarray) -> None:
        super().__init__()
        logs = np.log(windows.astype(np.float64))
        relative, steps = logs[:, :-1] - logs[:, -1:], np.log(following) - logs[:, -1]
        for name, values in (("input", relative), ("step", steps)):
            low, high = values.min(axis=0), values.max(axis=0)
            self.register_buffer(f"{name}_min", torch.tensor(low, dtype=torch.float32))
            self.register_buffer(f"{name}_range", torch.tensor(high - low, dtype=torch.float32))

    def inputs(self, logs: torch.Tensor) -> torch.Tensor:
        return (logs[:, :-1] - logs[:, -1:] - self.input_min) / self.input_range

    def next_value(self, logs: torch.Tensor, scaled_step: torch.Tensor) -> torch.Tensor:
        return torch.exp(logs[:, -1:] + scaled_step * self.step_range + self.step_min)


class PassengersNet(nn.Module):
    """Raw window [batch, W] -> next month [batch, 1]: the mean log step of several MLPs."""

    def __init__(self, scaling: WindowScaling, members: list[nn.Module]) -> None:
        super().__init__()
        self.scaling = scaling
        self.members = nn.ModuleList(members)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        logs = torch.log(window)
        inputs = self.scaling.inputs(logs)
        return self.scaling.next_value(logs, torch.stack([member(inputs) for member in self.members]).mean(0))


def member_mlp(inputs: int, hidden: int) -> nn.Module:
    """One ensemble member: the scaled inputs -> the scaled log step to the next month."""
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, 1))


def torch_step(model: nn.Module) -> Step:
    """The PyTorch module as the recursion's one-step callable."""

    def step(windows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(windows)).numpy()

    return step


def _log_steps(values: np.ndarray, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of the months and the log of the month after it: what a member learns from."""
    windows, following = windows_and_next(values, window)
    return torch.from_numpy(windows), torch.log(torch.from_numpy(following))


def _fit_member(scaling: WindowScaling, fit_values: np.ndarray, val_values: np.ndarray, config: Profile,
                seed: int) -> tuple[nn.Module, FitResult]:
    """One MLP trained on one-step log errors, stopped on its recursive validation MAPE."""
    seed_everything(seed)
    model = PassengersNet(scaling, [member_mlp(config.window - 1, config.hidden)])
    batch, validation_batch = (_log_steps(values, config.window) for values in (
        fit_values, np.concatenate([fit_values[-config.window:], val_values])))  # the windows ending in validation
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def loss(m: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(torch.log(m(b[0])).squeeze(1), b[1])

    result = fit(
        model, lambda: [batch],  # a few dozen windows: one full batch per epoch
        step=loss,
        validate=lambda m: metrics.mape(
            val_values, recursive_forecast(torch_step(m), fit_values, config.window, len(val_values))),
        validation_loss=lambda m: float(loss(m, validation_batch)),
        optimizer=optimizer, epochs=config.epochs, patience=config.patience, desc=f"{NAME} seed {seed}",
        leave=False, threads=1)  # a tiny MLP: thread hand-offs would cost more than its maths
    return model.members[0], result


# --- evaluation on the exported graph ---------------------------------------------------------


def _forecasts(step: Step, history: np.ndarray, horizon: int, window: int) -> dict[str, np.ndarray]:
    return {"network": recursive_forecast(step, history, window, horizon),
            "seasonal_naive": seasonal_naive(history, horizon),
            "seasonal_linear": seasonal_linear(history, horizon)}


def rolling_log_errors(step: Step, values: np.ndarray, start: int, end: int, window: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The recursive forecast from every origin ``start..end - 1`` (the history: ``values`` before
    it) up to month ``end``: each forecast month's horizon and log(actual / forecast), flat."""
    horizons, errors = [], []
    for origin in range(start, end):
        forecast = recursive_forecast(step, values[:origin], window, end - origin)
        horizons.append(np.arange(1, end - origin + 1))
        errors.append(np.log(values[origin:end] / forecast))
    return np.concatenate(horizons), np.concatenate(errors)


def horizon_exponent(horizons: np.ndarray, errors: np.ndarray) -> float:
    """How fast errors grow with the horizon h, as h^p: the slope of log mean |error| against log h.
    Each horizon's mean is weighted by the square root of its count (its standard error shrinks so),
    since long horizons have few errors; p is kept within [0, 1], between no growth and a drift."""
    steps, counts = np.unique(horizons, return_counts=True)
    mean_abs = np.array([np.abs(errors[horizons == step]).mean() for step in steps])
    slope = np.polyfit(np.log(steps), np.log(mean_abs), 1, w=np.sqrt(counts))[0]
    return float(np.clip(slope, 0.0, 1.0))


def conformal_scores(horizons: np.ndarray, errors: np.ndarray, exponent: float) -> np.ndarray:
    """Absolute log errors over horizon^exponent, sorted: every horizon's errors pooled on one scale."""
    return np.sort(np.abs(errors) / horizons ** exponent)


def _calibration(step: Step, values: np.ndarray, window: int) -> ForecastCalibration:
    """Scores of the forecasts from origins 1956-12 to 1958-11 over the validation slice's months
    only: 24 at horizon 1 down to 1 at horizon 24, 300 in all; the test period stays unseen."""
    fit_end, test_start = _periods(len(values))
    horizons, errors = rolling_log_errors(step, values, fit_end, test_start, window)
    exponent = horizon_exponent(horizons, errors)
    return ForecastCalibration(method="rolling-origin-conformal", exponent=exponent,
                               scores=conformal_scores(horizons, errors, exponent).tolist())


def _interval_coverage(step: Step, values: np.ndarray, window: int, forecast: np.ndarray,
                       calibration: ForecastCalibration) -> dict[str, dict[str, float]]:
    """Per level: the share of test months inside the interval of the forecast from 1958-12
    (``forecast``) and the interval's mean width (thousands), and the share over the forecasts
    from every origin 1958-12 to 1960-11 (300 months, 24 at horizon 1 down to 1 at 24), overall
    and by horizon: the overall share can hide short horizons covered less than long ones."""
    _, test_start = _periods(len(values))
    actual = values[test_start:]
    horizons, errors = rolling_log_errors(step, values, test_start, len(values), window)
    coverage = {}
    for level in INTERVAL_LEVELS:
        low, high = forecast_intervals(forecast, calibration, level).T
        inside = np.abs(errors) <= np.array([calibration.half_width(level, horizon) for horizon in horizons])
        coverage[f"{level:.2f}"] = {
            "coverage": float(((low <= actual) & (actual <= high)).mean()), "width": float((high - low).mean()),
            "rolling_coverage": float(inside.mean()),
            "rolling_by_horizon": {f"{first}-{last}": float(inside[(horizons >= first) & (horizons <= last)].mean())
                                   for first, last in HORIZON_BANDS}}
    return coverage


class ForecastRecipe(Recipe[Profile]):
    """``limit`` is ignored: the series is 144 months. No checkpoints: the full profile trains in
    well under a minute."""

    name, task, profiles = NAME, "time-series-forecasting", PROFILES

    def load(self) -> None:
        self.months, self.values = load_passengers()
        self.fit_end, self.test_start = _periods(len(self.values))

    def learn(self) -> tuple[nn.Module, Fits]:
        config, values = self.config, self.values
        fit_values, val_values = values[:self.fit_end], values[self.fit_end:self.test_start]
        self.scaling = WindowScaling(*windows_and_next(fit_values, config.window))
        trained = [_fit_member(self.scaling, fit_values, val_values, config, self.run.seed + k)
                   for k in range(config.members)]
        self.members = [{"seed": self.run.seed + k, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                         "val_mape": result.best_score, "history": result.history}
                        for k, (_, result) in enumerate(trained)]
        return PassengersNet(self.scaling, [member for member, _ in trained]).eval(), Fits([r for _, r in trained])

    def graphs(self, model: nn.Module) -> dict[str, Graph]:
        parity_windows, _ = windows_and_next(self.values, self.config.window)
        return {"model": Graph(
            file="model.onnx",
            write=torch_writer(model, {INPUT: parity_windows[:2]}, [OUTPUT]),
            reference=lambda inputs: [torch_step(model)(inputs[INPUT])],
            parity_inputs={INPUT: parity_windows},
            units=UNITS,
            rtol=1e-5,  # outputs in the hundreds: float32 keeps ~7 digits, log and exp kernels differ in the last
        )}

    def card(self, model: nn.Module) -> dict[str, Any]:
        config, months, fit_end, test_start = self.config, self.months, self.fit_end, self.test_start
        return {
            "data": {"source": "airline passengers, monthly totals in thousands (Box & Jenkins)",
                     "fit": f"{months[0]}..{months[fit_end - 1]}",
                     "validation": f"{months[fit_end]}..{months[test_start - 1]}",
                     "test": f"{months[test_start]}..{months[-1]}",
                     "fit_windows": fit_end - config.window, "validation_months": VALIDATION_MONTHS,
                     "test_months": TEST_MONTHS,
                     "interval_calibration": f"forecasts from every origin {months[fit_end - 1]}.."
                                             f"{months[test_start - 2]} over the validation months"},
            "preprocessing": {
                "window": config.window,
                "convention": "history is consecutive months, oldest first; the forecast starts the month after "
                              "the last history value and feeds each prediction back (recursive); no calendar input",
                "in_graph": {"inputs": "log(month / newest month), MinMax-scaled",
                             "output": "newest month * exp(step)",
                             **{name: buffer.tolist() for name, buffer in self.scaling.named_buffers()}},
            },
            "series": {"start": months[0], "values": self.values.tolist()},
            "hyperparameters": {"members": config.members, "window": config.window, "hidden": [config.hidden] * 2,
                                "activation": "tanh", "lr": config.lr, "weight_decay": config.weight_decay,
                                "optimizer": "AdamW, full batch", "loss": "MSE of log passengers, one step ahead",
                                "epochs": config.epochs, "patience": config.patience,
                                "early_stopping": f"MAPE of the {VALIDATION_MONTHS}-month recursive validation "
                                                  "forecast"},
            "members": self.members,
        }

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        """24-month recursive forecasts of the graph against the baselines, and the coverage of
        its prediction intervals."""
        months, values, window = self.months, self.values, self.config.window
        fit_end, test_start = self.fit_end, self.test_start
        step = session_step(sessions["model"], INPUT)
        test = _forecasts(step, values[:test_start], TEST_MONTHS, window)
        scores = {name: metrics.forecast_metrics(values[test_start:], pred) for name, pred in test.items()}
        validation = {name: metrics.forecast_metrics(values[fit_end:test_start], pred)
                      for name, pred in _forecasts(step, values[:fit_end], VALIDATION_MONTHS, window).items()}
        calibration = _calibration(step, values, window)
        band = forecast_intervals(test["network"], calibration, PLOTTED_LEVEL)
        plot = plots.forecasts(months, values, test_start, test, plots.reports_dir(NAME) / "forecast.png",
                               f"{NAME}: {TEST_MONTHS}-month forecasts from {months[test_start - 1]}",
                               "passengers (thousands)", band=(f"network, {PLOTTED_LEVEL:.0%} interval", band))
        return {
            **{f"test_{key}": value for key, value in scores.pop("network").items()},
            "baselines": scores,
            "horizon_months": TEST_MONTHS,
            "validation": validation,  # the network's figure is optimistic: it chose the stopping epochs
            "interval_coverage": _interval_coverage(step, values, window, test["network"], calibration),
            "plots": [str(plot)],
        }

    def calibrate(self, sessions: Sessions) -> dict[str, Any]:
        """The card's ``forecast_calibration``, which serving reads."""
        return {"forecast_calibration": _calibration(session_step(sessions["model"], INPUT), self.values,
                                                     self.config.window).model_dump()}
