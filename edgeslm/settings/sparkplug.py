"""[sparkplug_out]: publish alerts and advice as a Sparkplug B edge node for SCADA hosts that expect it."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from edgeslm.settings.base import Section

# Sparkplug ids are topic levels: no '/', '+', '#' (Sparkplug 3.0 section 4.1.1); kept to a safe set.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class SparkplugOutSettings(Section):
    """Opt-in Sparkplug B output. Best-effort live state; the JSON topics stay the store-and-forward path."""

    enabled: bool = Field(False, description="Publish alerts and advice as a Sparkplug B edge node (spBv1.0).")
    group_id: str = Field("edgeslm", description="Sparkplug group id of our edge node.")
    edge_node_id: str = Field("", description="Our Sparkplug edge node id; must be unique within the group. "
                              "Required when enabled (usually the gateway name).")
    client_id: str = Field("", max_length=128, description="MQTT client id of the Sparkplug session; empty "
                           "means 'edgeslm-spb-<group>-<edge node>'. A session separate from the daemon's "
                           "own, so its NDEATH will does not replace our status will.")
    rebirth_min_interval_s: float = Field(1.0, ge=0, le=60, description="Rebirth commands (NCMD) closer "
                                          "together than this are answered once.")
    connect_timeout_s: float = Field(5.0, gt=0, le=60, description="How long stop() waits for the NDEATH to "
                                     "be acknowledged before disconnecting.")

    @model_validator(mode="after")
    def _check(self) -> SparkplugOutSettings:
        if not _ID.match(self.group_id):
            raise ValueError("group_id: expected 1-64 letters, digits, '_', '.', ':' or '-'")
        if self.edge_node_id and not _ID.match(self.edge_node_id):
            raise ValueError("edge_node_id: expected 1-64 letters, digits, '_', '.', ':' or '-'")
        if self.enabled and not self.edge_node_id:
            raise ValueError("sparkplug_out is enabled but edge_node_id is empty: set it, e.g. to the gateway "
                             "name (it must be unique within the Sparkplug group)")
        return self
