"""The configuration tree: one TOML file, EDGESLM_* environment overrides, systemd credentials.

Precedence, strongest first: environment (``EDGESLM_MQTT__PORT=1884``), the TOML file, defaults.
The broker password may also come from ``mqtt.password_file`` or ``$CREDENTIALS_DIRECTORY/mqtt_password``.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edgeslm.settings.advice import AdviceSettings, AssetContext, SignalContext
from edgeslm.settings.base import Section
from edgeslm.settings.detect import AlarmSettings, DetectSettings
from edgeslm.settings.health import HealthSettings, LoggingSettings
from edgeslm.settings.ingest import IngestSettings, JsonMapping, PlainMapping, SparkplugMapping, Subscription
from edgeslm.settings.mqtt import MqttSettings, TlsSettings
from edgeslm.settings.outbox import OutboxSettings
from edgeslm.settings.sparkplug import SparkplugOutSettings

__all__ = [
    "EX_CONFIG", "AdviceSettings", "AlarmSettings", "AssetContext", "ConfigError", "DetectSettings",
    "GatewaySettings", "HealthSettings", "IngestSettings", "JsonMapping", "LoggingSettings", "MqttSettings",
    "OutboxSettings", "PlainMapping", "Settings", "SignalContext", "SparkplugMapping", "Subscription",
    "TlsSettings", "load_settings",
]

EX_CONFIG = 78  # sysexits.h: configuration error; systemd's RestartPreventExitStatus keys on it
MAX_CONFIG_BYTES = 1024 * 1024
CREDENTIAL_NAME = "mqtt_password"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class GatewaySettings(Section):
    name: str = Field("gateway-1", description="This gateway's name: in the status topic and client id.")
    site: str = Field("site", description="Plant or site name: second level of our topics.")
    topic_prefix: str = Field("edgeslm", description="First level(s) of every topic we publish.")
    state_dir: Path = Field(Path("/var/lib/edgeslm"), description="Writable folder for the outbox and "
                            "detector state (systemd StateDirectory).")
    state_save_s: float = Field(600.0, ge=10, description="Seconds between saves of the learnt detector state "
                                "(also saved at stop). A crash loses at most this much learning; each save "
                                "writes ~20 KB per signal to flash.")

    @field_validator("name", "site")
    @classmethod
    def _topic_safe(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("expected 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or any(c in v for c in "+#\0") or v.startswith("/") or v.endswith("/"):
            raise ValueError("expected a topic prefix without wildcards or leading/trailing '/'")
        return v


_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("_FILE_DATA", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The already-parsed TOML file (parsed by us, so errors carry line numbers and size limits hold)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get() or {})


class Settings(BaseSettings):
    """Root of the configuration; each table of the TOML file is one section."""

    model_config = SettingsConfigDict(env_prefix="EDGESLM_", env_nested_delimiter="__", extra="forbid",
                                      frozen=True, case_sensitive=False, env_ignore_empty=True)

    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    subscriptions: list[Subscription] = Field(default_factory=list)
    detect: DetectSettings = Field(default_factory=DetectSettings)
    alarm: AlarmSettings = Field(default_factory=AlarmSettings)
    advice: AdviceSettings = Field(default_factory=AdviceSettings)
    assets: dict[str, AssetContext] = Field(default_factory=dict)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    sparkplug_out: SparkplugOutSettings = Field(default_factory=SparkplugOutSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: Any,
                                   env_settings: Any, dotenv_settings: Any,
                                   file_secret_settings: Any) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.subscriptions:
            raise ValueError("no [[subscriptions]]: add at least one topic filter to read telemetry from")
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"edgeslm-{self.gateway.name}"

    @property
    def outbox_path(self) -> Path:
        return self.outbox.path or self.gateway.state_dir / "outbox.db"

    def mqtt_password(self) -> str | None:
        """The broker password from the config, its file, or the systemd credential, in that order."""
        if self.mqtt.password is not None:
            return self.mqtt.password.get_secret_value()
        if self.mqtt.password_file is not None:
            return _first_line(self.mqtt.password_file)
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir and (Path(cred_dir) / CREDENTIAL_NAME).is_file():
            return _first_line(Path(cred_dir) / CREDENTIAL_NAME)
        return None


def _first_line(path: Path) -> str:
    return path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""


class ConfigError(Exception):
    """The configuration cannot be used; `problems` are readable lines, one per error."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} configuration error{'s' if n != 1 else ''}"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the TOML file with the checks a hand-edited file needs; raise ConfigError, never a traceback."""
    src = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(src, ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(src, ["is a directory, expected a TOML file"]) from None
    except PermissionError:
        raise ConfigError(src, ["permission denied: the service user cannot read it"]) from None
    except OSError as e:  # symlink loops (ELOOP), I/O errors
        raise ConfigError(src, [f"cannot read: {e.strerror or e}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(src, [f"larger than {MAX_CONFIG_BYTES // 1024} KiB; is this the right file?"])
    if not raw.strip():
        raise ConfigError(src, ["file is empty (an editor may be half-way through saving it)"])
    try:
        text = raw.decode("utf-8-sig")  # tolerate a BOM left by Windows editors
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(src, [f"line {line}: not valid UTF-8 (byte 0x{raw[e.start]:02x}); save the file as "
                                "UTF-8"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(src, [f"not valid TOML: {e}"]) from None


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue  # pydantic's internal validator frames, not keys
        else:
            key = "json" if part == "json_map" else str(part)
            out += ("." if out else "") + key
    return out or "(top level)"


def format_validation_error(err: ValidationError) -> list[str]:
    """One line per error: the key path, the bad value and what is expected."""
    lines = []
    for e in err.errors(include_url=False):
        key = _key_path(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (misspelt, or in the wrong [table]?)")
            continue
        if e["type"] == "missing":
            lines.append(f"{key}: required key is missing")
            continue
        value = e.get("input")
        if isinstance(value, dict | list) or "password" in key:
            lines.append(f"{key}: {msg}")
        else:
            lines.append(f"{key}: {msg} (got {value!r})")
    return lines


def load_settings(path: Path | str | None, **overrides: Any) -> Settings:
    """Load, merge and validate. Raises ConfigError with every problem found."""
    data = read_config_file(Path(path)) if path is not None else {}
    token = _FILE_DATA.set(data)
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(str(path or "(defaults)"), format_validation_error(e)) from None
    finally:
        _FILE_DATA.reset(token)

