"""[mqtt]: how we reach the broker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from edgeslm.settings.base import Section


class TlsSettings(Section):
    enabled: bool = Field(False, description="Connect with TLS (usually port 8883).")
    ca_file: Path | None = Field(None, description="PEM file of the CA that signed the broker's certificate; "
                                 "empty uses the system trust store.")
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key (PEM) of the client certificate.")
    verify_hostname: bool = Field(True, description="Check the broker's certificate matches host. "
                                  "Turn off only for lab brokers addressed by IP.")

    @model_validator(mode="after")
    def _cert_needs_key(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together for client-certificate auth")
        return self


class MqttSettings(Section):
    host: str = Field("localhost", min_length=1, description="Broker host name or IP address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port (1883 plain, 8883 TLS).")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    client_id: str = Field("", max_length=128,
                           description="MQTT client id of the telemetry session; empty means 'edgeslm-<gateway "
                           "name>'. Must be stable across restarts for the broker to keep our persistent "
                           "session. What we publish goes out on a second session, '<client_id>-out'.")
    username: str | None = Field(None, description="User name; needs a password.")
    password: SecretStr | None = Field(None, description="Password. Prefer password_file or the systemd "
                                       "credential 'mqtt_password' so it never sits in this file.")
    password_file: Path | None = Field(None, description="File whose first line is the password.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="Keepalive in seconds; a dead broker is noticed "
                             "within 1.5 x this.")
    session_expiry_s: int = Field(86400, ge=0, description="MQTT 5 session expiry: how long the broker keeps "
                                  "our subscriptions and queued telemetry while we are down.")
    clean_start: bool = Field(False, description="Start a fresh session on connect (loses telemetry queued "
                              "by the broker while the daemon was down).")
    reconnect_min_s: float = Field(1.0, gt=0, description="First reconnect delay, doubled up to the maximum.")
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest reconnect delay.")
    tls: TlsSettings = Field(default_factory=TlsSettings)

    @model_validator(mode="after")
    def _check(self) -> MqttSettings:
        credential = Path(os.environ.get("CREDENTIALS_DIRECTORY") or "/nonexistent") / "mqtt_password"
        if self.username and self.password is None and self.password_file is None and not credential.is_file():
            raise ValueError("username is set but no password: set password_file, the systemd credential "
                             "'mqtt_password', or EDGESLM_MQTT__PASSWORD")
        if self.password is not None and self.password_file is not None:
            raise ValueError("set either password or password_file, not both")
        if self.password_file is not None and not os.access(self.password_file, os.R_OK):
            raise ValueError(f"password_file {self.password_file} does not exist or is not readable")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self
