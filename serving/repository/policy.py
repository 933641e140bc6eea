"""Which published versions of a model a load brings up: Triton's version policies.

``latest`` (the newest ``count``, one by default, as in Triton), ``all``, or ``specific`` versions.
A pinned version is always among those loaded, since requests that name no version go to it.
A load may carry Triton's model configuration (``tritonclient``'s ``load_model(config=...)``):
only its ``version_policy`` is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from serving.errors import FieldError

Kind = Literal["latest", "all", "specific"]


@dataclass(frozen=True)
class Policy:
    kind: Kind = "latest"
    count: int = 1  # for "latest"
    versions: tuple[str, ...] = ()  # for "specific"

    def pick(self, published: list[str], pinned: str | None = None) -> list[str]:
        """The versions to load among ``published`` (oldest first), in that order."""
        if self.kind == "all":
            chosen = set(published)
        elif self.kind == "specific":
            if not self.versions:
                raise FieldError("parameters.config", "a specific version_policy names no version: unload the "
                                                      "model instead")
            missing = [version for version in self.versions if version not in published]
            if missing:
                raise FieldError("parameters.config", f"version_policy names versions {missing} that are not "
                                                      f"published (published: {published})", status=404)
            chosen = set(self.versions)
        else:
            chosen = set(published[-self.count:])
        if pinned in published:
            chosen.add(pinned)
        return [version for version in published if version in chosen]

    @classmethod
    def from_config(cls, config: Any) -> Policy:
        """The policy of a Triton model configuration (JSON text or an object); the default where
        it sets none. Anything else in it is not read."""
        if config is None:
            return cls()
        try:
            parsed = json.loads(config) if isinstance(config, (str, bytes)) else config
            stated = parsed.get("version_policy") or {}
            if "all" in stated:
                return cls("all")
            if "specific" in stated:
                return cls("specific", versions=tuple(str(v) for v in stated["specific"]["versions"]))
            if "latest" in stated:
                count = int(stated["latest"].get("num_versions", 1))
                if count < 1:
                    raise ValueError("latest.num_versions must be 1 or more")
                return cls("latest", count=count)
            return cls()
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise FieldError("parameters.config", f"not a model configuration with a version_policy of latest, "
                                                  f"all or specific ({error})") from None
