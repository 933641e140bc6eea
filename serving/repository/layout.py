"""Where a model's versions live in the models directory, and how a new one is published.

    models/<name>/<n>/card.json, model.onnx, ...   version n = 1, 2, ... in the order published
    models/<name>/card.json, model.onnx, ...       a model exported before versions: its only
                                                   version, older than any numbered one

A version is published whole: its files are written to a staging folder, a number is claimed by
creating an empty folder for it (``os.mkdir`` fails for the second of two publishers asking for
the same number), the card is written last, and the staging folder is renamed onto it, so a reader finds either no card
there or the complete version. The card's ``version`` is its number as a string; a card from
before versions keeps the version string it was written with. Folders whose names start with a
dot are staging folders and never models.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

CARD = "card.json"


@dataclass(frozen=True, order=True)
class Version:
    order: int  # publish order; 0 for a model exported before versions
    path: Path  # the folder holding the version's card and graphs


def _numbered(model_dir: Path) -> list[Path]:
    return [child for child in model_dir.iterdir() if child.name.isdigit()] if model_dir.is_dir() else []


def versions(model_dir: Path) -> list[Version]:
    """The published versions of the model in ``model_dir``, oldest first (a claimed number whose
    card is not there yet is still being published and is left out)."""
    found = [Version(int(path.name), path) for path in _numbered(model_dir) if (path / CARD).is_file()]
    if (model_dir / CARD).is_file():
        found.append(Version(0, model_dir))
    return sorted(found)


def newest(model_dir: Path) -> Path:
    """The folder of the newest published version of the model in ``model_dir``; ``model_dir``
    itself when it has none (where a caller looking for its card will find it missing)."""
    published = versions(model_dir)
    return published[-1].path if published else model_dir


def card_file(models_root: Path, name: str) -> Path:
    """The card of the newest version of ``name`` (which need not exist)."""
    return newest(models_root / name) / CARD


def model_names(models_root: Path) -> list[str]:
    """Every model with at least one published version, by name."""
    if not models_root.is_dir():
        return []
    return sorted(child.name for child in models_root.iterdir()
                  if child.is_dir() and not child.name.startswith(".") and versions(child))


@contextlib.contextmanager
def staging(models_dir: Path, name: str) -> Iterator[Path]:
    """A fresh staging folder for a version of ``name`` in ``models_dir`` (its name starts with a
    dot: never read as a model), removed afterwards unless ``publish`` moved it into place."""
    models_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(staging: Path, model_dir: Path, card: dict[str, Any],
            check: Callable[[dict[str, Any]], None] = lambda _card: None) -> str:
    """Publish the version in ``staging`` (every file but its card) as the next version of
    ``model_dir``; returns its version string. ``card`` gets that version and goes to ``check``
    (which may refuse by raising: the claimed number is then given back and nothing is published),
    then into ``staging`` as the version's card, the last file written."""
    first = not model_dir.exists()
    model_dir.mkdir(parents=True, exist_ok=True)
    number = max((int(path.name) for path in _numbered(model_dir)), default=0) + 1
    while True:
        target = model_dir / str(number)
        try:
            target.mkdir()
            break
        except FileExistsError:  # another publisher claimed it first
            number += 1
    try:
        card["version"] = str(number)
        check(card)
        (staging / CARD).write_text(json.dumps(card, indent=2) + "\n")
        os.rename(staging, target)  # onto the empty claimed folder: the whole version appears at once
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        if first:
            with contextlib.suppress(OSError):  # unless another publisher's version is in it by now
                model_dir.rmdir()
        raise
    return str(number)


def by_version(model_dir: Path) -> dict[str, Path]:
    """The published versions of the model in ``model_dir`` by version string, oldest first: a
    numbered folder's number, or the version a card from before versions was written with."""
    found = {}
    for version in versions(model_dir):
        if version.order:
            found[version.path.name] = version.path
        else:
            try:
                found[str(json.loads((version.path / CARD).read_text()).get("version", "0"))] = version.path
            except (OSError, ValueError, AttributeError):
                found["0"] = version.path  # unreadable: the registry reports why when it loads it
    return found
