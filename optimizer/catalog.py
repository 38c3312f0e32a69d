"""The shipped model catalog (`data/model_catalog.json`): profiles with published list prices.

The Registry is the source of truth when there is one; this file seeds the sandbox's
Registry and prices offline ingestion when records carry no cost.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from optimizer.errors import BadInputError
from optimizer.schemas.registry import ModelProfile


def load_catalog(path: Path) -> list[ModelProfile]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return [ModelProfile.model_validate(item) for item in document["models"]]
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        raise BadInputError(f"model catalog {path}: {exc}".splitlines()[0]) from exc
