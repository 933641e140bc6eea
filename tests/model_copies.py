"""Copies of the session's trained models with their card edited, for tests of refused models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from serving.repository import layout


def edited_copy(trained_models: Path, tmp_path: Path, name: str, edit: Callable[[Path, dict], dict]) -> Path:
    """A models directory holding only ``name``, whose newest card is ``edit(version_dir, card)``."""
    models = tmp_path / "models"
    shutil.copytree(trained_models / name, models / name)
    card_path = layout.card_file(models, name)
    card_path.write_text(json.dumps(edit(card_path.parent, json.loads(card_path.read_text()))))
    return models
