"""House-price regressors on California housing: a gradient-boosted tree model and an MLP.

Both use the fixed split of ``data.california_housing_split`` (4,128 test rows never used for
fitting or tuning), pick hyperparameters by 5-fold cross-validation on the training split, and
are scored by running their exported ONNX graph on the test split. Targets are in $100k.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from torch import nn

from serving.repository.card import IntervalCalibration

from . import drift, explanations, metrics, novelty, plots
from .data import HOUSING_FEATURES, HOUSING_SPLIT_SEED, HOUSING_TEST_SIZE, HousingSplit, california_housing_split
from .export import Graph, Sessions, Stopwatch, sklearn_writer, torch_writer
from .loop import FitResult, fit, seed_everything
from .template import P, Recipe, Run
from .tuning import Fit, cross_validate, nested_cross_validate, predicting, size_curve

INPUT, OUTPUT = "features", "value"
CALIBRATION_SHARE, CALIBRATION_SEED = 0.1, 0  # of the training split: never fitted, for the intervals
INTERVAL_LEVELS = (0.8, 0.9, 0.95)
CAPPED_VALUE = 5.0  # $100k: the data's top code, $500,001 and above
NOVELTY_FLAG_SHARE = 0.01  # of the calibration rows: a flag on a real house should be rare
UNITS = {INPUT: "MedInc ($10k), HouseAge (years), AveRooms, AveBedrms, Population, AveOccup, "
                "Latitude (deg), Longitude (deg)", OUTPUT: "$100k"}
LOG_FEATURES = ("AveRooms", "AveBedrms", "Population", "AveOccup")  # heavy right tails
LOCATION_FREQUENCIES = (1.0, 2.0, 4.0)  # cycles per radian of degrees: coarse to city scale


@dataclass(frozen=True)
class GbmProfile:
    candidates: tuple[dict[str, Any], ...]
    folds: int = 5
    forest_trees: int = 100


@dataclass(frozen=True)
class MlpProfile:
    candidates: tuple[dict[str, Any], ...]
    cv_epochs: int
    epochs: int
    patience: int
    folds: int = 5
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2


GBM_PROFILES = {
    "quick": GbmProfile(
        candidates=({"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31},
                    {"learning_rate": 0.1, "max_iter": 300, "max_leaf_nodes": 63}),
        forest_trees=20,
    ),
    "full": GbmProfile(
        candidates=({"learning_rate": 0.1, "max_iter": 500, "max_leaf_nodes": 31},
                    {"learning_rate": 0.05, "max_iter": 1000, "max_leaf_nodes": 63},
                    {"learning_rate": 0.05, "max_iter": 1500, "max_leaf_nodes": 63, "l2_regularization": 1.0},
                    {"learning_rate": 0.03, "max_iter": 2000, "max_leaf_nodes": 63, "min_samples_leaf": 10}),
    ),
}
MLP_PROFILES = {
    "quick": MlpProfile(candidates=({"width": 128, "dropout": 0.0},), cv_epochs=8, epochs=20, patience=8),
    "full": MlpProfile(candidates=({"width": 256, "dropout": 0.0}, {"width": 512, "dropout": 0.1}),
                       cv_epochs=40, epochs=80, patience=20),
}


@dataclass(frozen=True)
class Rows:
    """The training split's rows a model may use: ``x``, ``y`` to fit (and cross-validate), and a
    fixed calibration slice it is never fitted on, for its conformal prediction intervals."""

    x: np.ndarray
    y: np.ndarray
    x_calibration: np.ndarray
    y_calibration: np.ndarray


def _training_rows(split: HousingSplit, limit: int | None) -> Rows:
    x, y = split.x_train[:limit], split.y_train[:limit]
    order = np.random.default_rng(CALIBRATION_SEED).permutation(len(y))
    calibration, fitted = order[:int(len(y) * CALIBRATION_SHARE)], order[int(len(y) * CALIBRATION_SHARE):]
    return Rows(x[fitted], y[fitted], x[calibration], y[calibration])


def _graph_predict(sessions: Sessions) -> Callable[[np.ndarray], np.ndarray]:
    def predict(x: np.ndarray) -> np.ndarray:
        return sessions["model"].run(None, {INPUT: x.astype(np.float32)})[0].ravel()
    return predict


def _calibration_errors(sessions: Sessions, rows: Rows) -> np.ndarray:
    """The graph's absolute errors on the calibration slice, sorted: the conformal scores."""
    return np.sort(np.abs(rows.y_calibration - _graph_predict(sessions)(rows.x_calibration)))


def _novelty(sessions: Sessions, split: HousingSplit, rows: Rows, seed: int) -> dict[str, Any]:
    """The threshold flags 1% of the calibration rows; the score is judged on the test rows against
    rows no census would report: every column shuffled on its own (each value real, the
    combination not) and features drawn uniformly within their training ranges."""
    def score(x: np.ndarray) -> np.ndarray:
        return sessions["novelty"].run(None, {novelty.INPUT: x.astype(np.float32)})[0]

    rng = np.random.default_rng(seed)
    shuffled = np.column_stack([rng.permutation(column) for column in split.x_test.T])
    low, high = rows.x.min(axis=0), rows.x.max(axis=0)
    uniform = rng.uniform(low, high, size=split.x_test.shape)
    return novelty.card_section(score(rows.x_calibration), score(split.x_test),
                                {"shuffled_columns": score(shuffled), "uniform_in_ranges": score(uniform)},
                                "calibration rows", NOVELTY_FLAG_SHARE,
                                ranges={name: [float(lo), float(hi)]
                                        for name, lo, hi in zip(HOUSING_FEATURES, low, high)})


def _coverage(y: np.ndarray, pred: np.ndarray, residuals: np.ndarray, groups: dict[str, np.ndarray]) -> dict:
    """Share of rows inside their interval, and the interval's width, at each level, overall and
    per subgroup: what a promise of 90% is worth on held-out data."""
    calibration = IntervalCalibration(method="split-conformal", residuals=residuals.tolist())
    result = {}
    for level in INTERVAL_LEVELS:
        half = calibration.half_width(level)
        inside = np.abs(y - pred) <= half
        result[f"{level:.2f}"] = {"coverage": float(inside.mean()), "width": 2 * half,
                                  "groups": {name: float(inside[mask].mean()) for name, mask in groups.items()}}
    return result


class HousingRecipe(Recipe[P]):
    """What both regressors share: the rows, the novelty graph, the card's data and
    preprocessing, and evaluation and calibration on the exported graph."""

    task = "tabular-regression"
    validation_rows = 0  # of the training rows, held out to stop the fit

    def load(self) -> None:
        self.split = california_housing_split()
        self.rows = _training_rows(self.split, self.run.limit)

    def search(self, fit: Fit) -> None:
        """The best of the profile's candidates by k-fold cross-validation on the training rows,
        then its learning curve over training-set size on the same folds."""
        config, x, y, seed = self.config, self.rows.x, self.rows.y, self.run.seed
        self.best, self.cross_validation = cross_validate(list(config.candidates), predicting(fit), x, y,
                                                          folds=config.folds, seed=seed, desc=f"{self.name} cv")
        self.size_curve = size_curve(self.best, fit, x, y, folds=config.folds, seed=seed)

    def model_graph(self, model: Any) -> Graph:
        raise NotImplementedError

    def drift_reference(self) -> dict[str, Any]:
        return drift.feature_reference(self.rows.x, HOUSING_FEATURES)

    def graphs(self, model: Any) -> dict[str, Graph]:
        split, rows = self.split, self.rows
        return {"model": self.model_graph(model),
                "novelty": novelty.graph(rows.x, None, split.x_test,
                                         log1p=[name in LOG_FEATURES for name in HOUSING_FEATURES])}

    def card(self, model: Any) -> dict[str, Any]:
        split, rows = self.split, self.rows
        return {"data": {"source": "California housing (StatLib, scikit-learn fetch_california_housing)",
                         "split": f"train_test_split(test_size={HOUSING_TEST_SIZE}, random_state={HOUSING_SPLIT_SEED})",
                         "train": len(rows.y) - self.validation_rows, "validation": self.validation_rows,
                         "interval_calibration": len(rows.y_calibration), "test": len(split.y_test)},
                "preprocessing": {"feature_order": list(HOUSING_FEATURES), "target_unit": "$100k",
                                  "price_usd_per_unit": 100_000},
                "cross_validation": self.cross_validation, "learning_curve_by_size": self.size_curve}

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        """Test metrics, fairness, intervals, importance and a plot, all from the exported graph."""
        split, rows = self.split, self.rows
        predict = _graph_predict(sessions)
        pred = predict(split.x_test)
        income_edges = np.quantile(rows.x[:, HOUSING_FEATURES.index("MedInc")], [0.25, 0.5, 0.75])
        groups = metrics.housing_groups(split.x_test, income_edges, HOUSING_FEATURES)
        residuals = _calibration_errors(sessions, rows)
        capped = split.y_test >= CAPPED_VALUE
        plot = plots.predicted_vs_true(split.y_test, pred, plots.reports_dir(self.name) / "predicted_vs_true.png",
                                       f"{self.name}: test split", "$100k")
        return {
            **{f"test_{key}": value for key, value in metrics.regression_metrics(split.y_test, pred).items()},
            "subgroups": metrics.subgroup_errors(split.y_test, pred, groups),
            "capped_test_rows": {"rows": int(capped.sum()), "coastal": int((capped & groups["coastal"]).sum())},
            "interval_coverage": _coverage(split.y_test, pred, residuals, groups),
            "permutation_importance": metrics.permutation_importance(
                predict, split.x_test, split.y_test, HOUSING_FEATURES),
            "plots": [str(plot)],
        }

    def calibrate(self, sessions: Sessions) -> dict[str, Any]:
        """The interval calibration, the Shapley background, and the novelty threshold and ranges."""
        split, rows, seed = self.split, self.rows, self.run.seed
        background, weights = explanations.background(rows.x, seed=seed)
        return {"interval_calibration": {"method": "split-conformal",
                                         "residuals": _calibration_errors(sessions, rows).tolist()},
                "explanation": explanations.card_section(_graph_predict(sessions), rows.x, split.x_test,
                                                         background, weights, seed),
                "novelty": _novelty(sessions, split, rows, seed)}


# --- gradient-boosted trees -------------------------------------------------------------------


def _gbm(params: dict[str, Any], seed: int) -> HistGradientBoostingRegressor:
    # Early stopping off: its internal 10% hold-out stops far too soon on this data.
    return HistGradientBoostingRegressor(early_stopping=False, random_state=seed, **params)


def baselines(x: np.ndarray, y: np.ndarray, split: HousingSplit, forest_trees: int, seed: int) -> dict[str, Any]:
    """LinearRegression and RandomForest on the same split, for the card's comparison table."""
    models = {"linear_regression": LinearRegression(),
              "random_forest": RandomForestRegressor(n_estimators=forest_trees, n_jobs=-1, random_state=seed)}
    return {name: metrics.regression_metrics(split.y_test, model.fit(x, y).predict(split.x_test))
            for name, model in models.items()}


class GbmRecipe(HousingRecipe[GbmProfile]):
    name, profiles = "house-price-gbm", GBM_PROFILES
    options = ("nested",)

    def __init__(self, run: Run, nested: bool = False) -> None:
        super().__init__(run)
        self.nested = nested  # also estimate the selection procedure's error by nested cross-validation

    def learn(self) -> tuple[HistGradientBoostingRegressor, Stopwatch]:
        config, seed, x, y = self.config, self.run.seed, self.rows.x, self.rows.y

        def fit(params: dict[str, Any], xf: np.ndarray, yf: np.ndarray, _xv: np.ndarray,
                _yv: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            return _gbm(params, seed).fit(xf, yf).predict

        with Stopwatch() as watch:
            self.search(fit)
            model = _gbm(self.best, seed).fit(x, y)
        self.nested_result = (nested_cross_validate(list(config.candidates), predicting(fit), x, y,
                                                    folds=config.folds, seed=seed, desc=f"{self.name} nested cv")
                              if self.nested else None)
        self.baselines = baselines(x, y, self.split, config.forest_trees, seed)
        return model, watch

    def model_graph(self, model: HistGradientBoostingRegressor) -> Graph:
        x_test = self.split.x_test
        return Graph(
            file="model.onnx",
            write=sklearn_writer(model, INPUT, len(HOUSING_FEATURES), OUTPUT),
            # scikit-learn sees the float64 values a client sends, the graph their float32 rounding.
            # Rounding is monotonic, so only a value within float32 precision above a threshold flips.
            reference=lambda _inputs: [model.predict(x_test).reshape(-1, 1)],
            parity_inputs={INPUT: x_test.astype(np.float32)},
            units=UNITS,
            max_exceed_fraction=0.001,
        )

    def card(self, model: HistGradientBoostingRegressor) -> dict[str, Any]:
        nested = {"nested_cross_validation": self.nested_result} if self.nested_result else {}
        return {**super().card(model), "hyperparameters": {**self.best, "n_iter": int(model.n_iter_)}, **nested}

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        return {**super().evaluate(sessions), "baselines": self.baselines}


# --- PyTorch MLP --------------------------------------------------------------------------------


class HousingFeatures(nn.Module):
    """Raw features -> model inputs, inside the graph so clients send the eight raw values.

    Logs tame the heavy-tailed ratios; rotated coordinates and Fourier features of latitude and
    longitude let a small MLP resolve location, which drives California prices. Standardization
    constants are fitted on the training rows only and stored as buffers.
    """

    def __init__(self, train_x: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("log_mask", torch.tensor([name in LOG_FEATURES for name in HOUSING_FEATURES]))
        self.register_buffer("frequencies", torch.tensor(LOCATION_FREQUENCIES, dtype=torch.float32))
        self.register_buffer("mean", torch.zeros(self.width))
        self.register_buffer("std", torch.ones(self.width))
        expanded = self.expand(torch.as_tensor(train_x, dtype=torch.float32))
        self.mean.copy_(expanded.mean(0))
        self.std.copy_(expanded.std(0))

    @property
    def width(self) -> int:
        return len(HOUSING_FEATURES) + 2 + 4 * len(LOCATION_FREQUENCIES)

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(self.log_mask, torch.log1p(x.clamp(min=0)), x)
        lat = x[:, HOUSING_FEATURES.index("Latitude"), None]
        lon = x[:, HOUSING_FEATURES.index("Longitude"), None]
        waves = [torch.sin(lat * self.frequencies), torch.cos(lat * self.frequencies),
                 torch.sin(lon * self.frequencies), torch.cos(lon * self.frequencies)]
        return torch.cat([x, lat + lon, lat - lon, *waves], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.expand(x) - self.mean) / self.std


class HousePriceMLP(nn.Module):
    def __init__(self, train_x: np.ndarray, width: int, dropout: float) -> None:
        super().__init__()
        self.features = HousingFeatures(train_x)
        self.net = nn.Sequential(
            nn.Linear(self.features.width, width), nn.SiLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.SiLU(), nn.Dropout(dropout),
            nn.Linear(width, width // 2), nn.SiLU(),
            nn.Linear(width // 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(x))


def _fit_mlp(params: dict[str, Any], config: MlpProfile, epochs: int, xf, yf, xv, yv, seed: int,
             checkpoint: Path | None = None, desc: str = "fold",
             leave: bool = False) -> tuple[HousePriceMLP, FitResult]:
    seed_everything(seed)
    model = HousePriceMLP(xf, **params)
    x_fit, y_fit = torch.as_tensor(xf, dtype=torch.float32), torch.as_tensor(yf, dtype=torch.float32)
    x_val, y_val = torch.as_tensor(xv, dtype=torch.float32), torch.as_tensor(yv, dtype=torch.float32)
    steps_per_epoch = -(-len(x_fit) // config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=epochs * steps_per_epoch)

    def batches():
        order = torch.randperm(len(x_fit))
        return (order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size))

    result = fit(model, batches,
                 step=lambda m, idx: nn.functional.mse_loss(m(x_fit[idx]).squeeze(1), y_fit[idx]),
                 validate=lambda m: torch.sqrt(nn.functional.mse_loss(m(x_val).squeeze(1), y_val)).item(),
                 validation_loss=lambda m: nn.functional.mse_loss(m(x_val).squeeze(1), y_val).item(),
                 optimizer=optimizer, scheduler=scheduler, scheduler_per_batch=True,
                 epochs=epochs, patience=config.patience, checkpoint=checkpoint, desc=desc, leave=leave)
    return model, result


def _predict_mlp(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float32)).numpy()

    return predict


class MlpRecipe(HousingRecipe[MlpProfile]):
    name, profiles = "house-price-mlp", MLP_PROFILES
    score = "best_validation_rmse"

    def learn(self) -> tuple[HousePriceMLP, Stopwatch]:
        config, seed, x, y = self.config, self.run.seed, self.rows.x, self.rows.y
        with Stopwatch() as watch:
            self.search(lambda params, xf, yf, xv, yv: _predict_mlp(
                _fit_mlp(params, config, config.cv_epochs, xf, yf, xv, yv, seed)[0]))
            # Final fit: early stopping on a 10% validation slice of the training split.
            order = np.random.default_rng(seed).permutation(len(y))
            val, fit_rows = order[: len(y) // 10], order[len(y) // 10:]
            self.validation_rows = len(val)
            # Its learning curve goes in the card (the template writes ``fitted``'s record); the
            # cost is the whole watch, cross-validation included.
            model, self.fitted = _fit_mlp(self.best, config, config.epochs, x[fit_rows], y[fit_rows], x[val],
                                          y[val], seed, checkpoint=self.run.checkpoint, desc=self.name, leave=True)
        return model, watch

    def model_graph(self, model: HousePriceMLP) -> Graph:
        x_test, predict = self.split.x_test, _predict_mlp(model)
        return Graph(
            file="model.onnx",
            write=torch_writer(model, {INPUT: x_test[:2].astype(np.float32)}, [OUTPUT]),
            reference=lambda inputs: [predict(inputs[INPUT])],
            parity_inputs={INPUT: x_test.astype(np.float32)},
            units=UNITS,
        )

    def card(self, model: HousePriceMLP) -> dict[str, Any]:
        config, card = self.config, super().card(model)
        card["hyperparameters"] = {**self.best, "lr": config.lr, "weight_decay": config.weight_decay,
                                   "batch_size": config.batch_size, "epochs": config.epochs,
                                   "optimizer": "AdamW + OneCycle", "loss": "MSE"}
        card["preprocessing"]["in_graph"] = {
            "log1p": list(LOG_FEATURES), "location_frequencies": list(LOCATION_FREQUENCIES),
            "standardize_mean": model.features.mean.tolist(), "standardize_std": model.features.std.tolist()}
        return card
