"""The parts of a model card that are prose (Mitchell et al., 2019): intended use, out-of-scope
uses, limitations and ethical considerations, written per family with the card's own measured
figures, and the training footprint with the assumptions its energy estimate rests on.
"""

from __future__ import annotations

from typing import Any, Callable

from serving.repository.catalog import IMAGES_MODEL

# Energy of a training run, estimated from the CPU time it used: a share of a server CPU's power
# per busy core. An AMD EPYC of this VM's class draws about 280 W at 64 busy cores (~4.4 W each);
# 10 W per core adds memory and the rest of the server. Idle power, cooling (PUE) and the
# machine's manufacture are left out; the carbon figure uses a world-average grid.
WATTS_PER_BUSY_CORE = 10.0
GRID_G_CO2E_PER_KWH = 475.0  # IEA, world average electricity, 2019


def footprint(training: dict[str, Any]) -> dict[str, Any]:
    """Wall and CPU seconds of the training (as the family measured them) and the energy estimate."""
    watt_hours = training["cpu_seconds"] * WATTS_PER_BUSY_CORE / 3600
    return {"wall_seconds": training["wall_seconds"], "cpu_seconds": training["cpu_seconds"],
            "device": training.get("device", "cpu"), "energy_wh": round(watt_hours, 3),
            "co2e_g": round(watt_hours / 1000 * GRID_G_CO2E_PER_KWH, 3),
            "assumptions": f"{WATTS_PER_BUSY_CORE:g} W per busy CPU core (server CPU, memory included), "
                           f"{GRID_G_CO2E_PER_KWH:g} g CO2e per kWh (world-average grid); idle power, cooling "
                           "and hardware manufacture not counted; fitting and tuning only (not export or evaluation)"}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _houses(card: dict[str, Any]) -> dict[str, Any]:
    metrics = card["metrics"]
    groups = metrics.get("subgroups", {}).get("groups", {})
    mape = {name: groups.get(name, {}).get("mape") for name in ("income_q1", "income_q4")}
    capped = metrics.get("capped_test_rows", {})
    return {
        "intended_use": "Estimate the median house value of a California census block group from the 1990 "
                        "census' eight features, to compare regression models and teach how they are judged.",
        "out_of_scope": ["pricing one home, or any lending, insurance, tax or rent decision",
                         "places outside California or any year but 1990 (prices have changed many-fold)",
                         "ranking neighbourhoods for investment or policing"],
        "limitations": [
            f"Relative errors are largest where incomes are lowest: test MAPE {mape['income_q1'] or 0:.1f}% in the "
            f"lowest income quartile against {mape['income_q4'] or 0:.1f}% in the highest.",
            f"Values are capped at $500k in the data: {capped.get('coastal', 'n/a')} of the "
            f"{capped.get('rows', 'n/a')} test rows at the cap are coastal, so expensive coastal areas are "
            "under-predicted and coastal RMSE is inflated.",
            "Intervals hold the stated share of block groups on average (split conformal), not of every subgroup: "
            "the card's interval_coverage gives them per subgroup.",
            "Features outside the training ranges, or combinations unlike any training row, are flagged "
            "(out_of_distribution); the price given for them is an extrapolation.",
        ],
        "ethical_considerations": [
            "Income and location stand in for demographics: a model of 1990 prices can carry the effects of "
            "redlining and segregation into any decision built on it.",
            "A price with a narrow-looking interval invites automation bias; each answer carries its interval, "
            "its novelty flag, and /house-price/explain shows which features drove it.",
        ],
    }


def _digits(card: dict[str, Any]) -> dict[str, Any]:
    metrics, novelty = card["metrics"], card.get("novelty") or {}
    return {
        "intended_use": "Read one handwritten digit per picture, written like MNIST's (US Census employees and "
                        "students, scanned, centred), for demos and teaching.",
        "out_of_scope": ["digit strings, letters or whole forms (one digit per picture only)",
                         "cheques, ballots, exam marks or identity documents without a person checking every answer"],
        "limitations": [
            f"Test accuracy {_percent(metrics.get('test_accuracy'))} on MNIST; photographed or other people's "
            "handwriting does worse (the README's real-world digits measure it).",
            "Styles rare in MNIST (a crossed 7, a 1 with a long flag) are read less reliably.",
            *([f"Pictures that are not digits are flagged with AUROC {novelty['auroc']:.3f} on letters, scribbles, "
               f"noise and photos, at a threshold that also flags {_percent(novelty.get('test_flagged'))} of real "
               "test digits; the classical models carry no flag."] if novelty else []),
        ],
        "ethical_considerations": [
            "Handwriting differs across countries, ages and schooling; MNIST's writers were American adults and "
            "teenagers of 1990, so others may be misread more often.",
            "A confident answer is not a correct one: the CNN's probabilities are calibrated on the validation "
            "slice, and /digits/explain shows the strokes behind an answer.",
        ],
    }


def _photos(card: dict[str, Any]) -> dict[str, Any]:
    metrics, novelty = card["metrics"], card.get("novelty") or {}
    return {
        "intended_use": "Tell the classes of its image folder apart (by default ants from bees) in photos, to "
                        "demonstrate transfer learning from an ImageNet backbone.",
        "out_of_scope": ["identifying species for pest control, conservation or allergy decisions",
                         "any photo of something else: it always answers with one of its labels"],
        "limitations": [
            f"Trained on {card.get('data', {}).get('train', 'n/a')} photos; test accuracy "
            f"{_percent(metrics.get('test_accuracy'))} on {card.get('data', {}).get('test', 'n/a')} photos.",
            "Its temperature is fitted on a few dozen holdout photos, so its probabilities are only roughly "
            "calibrated (the card's probability_calibration gives the test ECE before and after).",
            *([f"Photos unlike its training photos are flagged with AUROC {novelty['auroc']:.3f} on digits, letters, "
               "scribbles and noise; a flagged photo's labels mean little."] if novelty else []),
        ],
        "ethical_considerations": [
            "The ImageNet backbone carries ImageNet's biases in what it has seen and how it was labelled.",
            "Low stakes as shipped; retrained on other folders, it needs its own evaluation before use.",
        ],
    }


def _passengers(card: dict[str, Any]) -> dict[str, Any]:
    metrics = card["metrics"]
    return {
        "intended_use": "Forecast monthly international airline passengers from the classic 1949-1960 series, "
                        "to teach recursive forecasting and how to judge it against baselines.",
        "out_of_scope": ["planning capacity, staffing or finance for a real airline",
                         "series with another seasonality or scale without retraining and re-testing"],
        "limitations": [
            f"One series of 144 months: test MAPE {metrics.get('test_mape', float('nan')):.2f}% on 1959-1960.",
            "Errors compound month by month; the intervals widen with the horizon and were calibrated on only "
            "two years (the card's interval_coverage gives their measured coverage).",
        ],
        "ethical_considerations": ["Low stakes as shipped; a forecast shown without its interval invites more "
                                   "trust than two years of calibration can carry."],
    }


def _generators(card: dict[str, Any]) -> dict[str, Any]:
    fid = card["metrics"].get("fid")
    return {
        "intended_use": "Draw MNIST-like digits for demos and for teaching how generative models are built and "
                        "compared.",
        "out_of_scope": ["training data for a deployed classifier without checking what it learns from them",
                         "imitating a person's handwriting"],
        "limitations": [f"FID {fid:.2f} against the MNIST test set in the digit CNN's features (lower is better; "
                        "the README compares the generators)." if fid is not None else "No FID measured.",
                        "Some samples are not readable digits; an unconditional model cannot be asked for one (its "
                        "endpoint asks the class-conditional twin)."],
        "ethical_considerations": ["Synthetic digits are labelled by the sampler's request, not by a person: a "
                                   "wrongly drawn digit would teach a wrong label."],
    }


WRITERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "tabular-regression": _houses, "image-classification": _digits, "time-series-forecasting": _passengers,
    "image-generation": _generators,
}


def sections(card: dict[str, Any]) -> dict[str, Any]:
    """The card's ``model_card`` (intended use ... ethical considerations) and, where the family
    timed its training, its ``footprint``."""
    if "model_card" in card:  # a family that writes its own (a model this module does not know)
        prose = card["model_card"]
    else:
        prose = (_photos if card["name"] == IMAGES_MODEL else WRITERS[card["task"]])(card)
    return {"model_card": prose, **({"footprint": footprint(card["training"])} if "training" in card else {})}
