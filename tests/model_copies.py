"""Copies of the session's trained models with their card edited, for tests of refused models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable


def edited_copy(trained_models: Path, tmp_path: Path, name: str, edit: Callable[[Path, dict], dict]) -> Path:
    """A models directory holding only ``name``, whose card is ``edit(model_dir, card)``."""
    models = tmp_path / "models"
    shutil.copytree(trained_models / name, models / name)
    card_path = models / name / "card.json"
    card_path.write_text(json.dumps(edit(models / name, json.loads(card_path.read_text()))))
    return models
