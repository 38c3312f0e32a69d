"""Base class of every wire payload: tolerant of fields added by newer platform versions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A JSON payload of the platform specification.

    Unknown fields are kept, not rejected: services add fields over time and a payload read
    and written back (a routing configuration, a model profile) must not lose them.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_wire(self) -> dict[str, object]:
        """The JSON-ready dict that goes on the wire (unset optional fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)
