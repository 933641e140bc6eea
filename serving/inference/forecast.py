"""Multi-step forecasts from a one-step model, by feeding each prediction back into the window.

Plain NumPy around a one-step callable, so the served recursion is the very code that measured
the card's metrics: training evaluates the exported graph through this module, and serving runs
it the same way; so do the prediction intervals around a forecast. Training may import it; it
imports nothing from training.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import onnxruntime as ort

from serving.repository.card import ForecastCalibration

Step = Callable[[np.ndarray], np.ndarray]  # windows float32 [batch, window] -> next values [batch, 1]


def session_step(session: ort.InferenceSession, input_name: str) -> Step:
    """An ONNX Runtime session with one input and one output as a ``Step``."""
    return lambda windows: session.run(None, {input_name: windows})[0]


def recursive_forecast(step: Step, history: Sequence[float], window: int, horizon: int) -> np.ndarray:
    """The ``horizon`` values after ``history`` (oldest first): each forecast becomes the newest input.

    Raises ``ValueError`` when ``history`` is shorter than the model's window.
    """
    if len(history) < window:
        raise ValueError(f"needs at least {window} monthly values, got {len(history)}")
    recent = np.asarray(history, np.float32)[-window:]
    forecast = np.empty(horizon, np.float32)
    for ahead in range(horizon):
        forecast[ahead] = step(recent[None, :])[0, 0]
        recent = np.append(recent[1:], forecast[ahead])
    return forecast


def forecast_intervals(forecast: np.ndarray, calibration: ForecastCalibration, level: float) -> np.ndarray:
    """[low, high] per forecast month (float64 [horizon, 2]) at ``level``: the forecast divided and
    multiplied by exp of that month's half-width, so the low end stays positive."""
    half = np.array([calibration.half_width(level, ahead) for ahead in range(1, len(forecast) + 1)])
    forecast = np.asarray(forecast, np.float64)
    return np.column_stack([forecast * np.exp(-half), forecast * np.exp(half)])
