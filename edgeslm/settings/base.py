"""Shared base for config sections: unknown keys are errors, every field documented."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config table. `extra="forbid"` turns a misspelt key into an error instead of a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
