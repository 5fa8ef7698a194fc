"""Settings: defaults < YAML file (`--config`) < environment (`TMF_EVENTS_*`) < command line."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from processor import setting_errors
from processor.origins import Origins, yaml_lines
from processor.setting_errors import (
    check_environment,
    did_you_mean,
    from_validation,
    problem,
)
from processor.tmf import DEFAULT_STATE_FIELDS, ENTITY_TYPES, EntityType

# Each HTTP-serving command's port when `http_port` is not set.
HTTP_PORTS = {"run": 8080, "api": 8081, "hub": 8082}


class ReportingSystem(BaseModel):
    """The v5 `source` / `reportingSystem` EntityRef; `id` defaults to the app id."""

    model_config = {"extra": "forbid"}
    id: str | None = None
    name: str = "tmf-events"


class Envelope(BaseModel):
    """Optional constant TMF envelope members."""

    model_config = {"extra": "forbid"}
    domain: str | None = None
    title: str | None = None
    description: str | None = None
    priority: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TMF_EVENTS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    bootstrap_servers: str = "localhost:9092"
    app_id: str = "tmf-events"
    input_topic: str = "inventory.changes"
    service_topic: str = "tmf.service.events"
    resource_topic: str = "tmf.resource.events"
    changelog_topic: str = ""  # default: <app_id>-state-changelog
    dlq_topic: str = ""  # default: <app_id>-dlq
    input_format: Literal["json", "avro"] = "json"
    tmf_version: Literal["v4", "v5"] = "v4"
    payload: Literal["full", "delta"] = "full"
    private_fields: list[str] = Field(default_factory=list)
    state_fields: dict[EntityType, list[str]] = Field(default_factory=dict)
    source: str = ""  # default: urn:tmf-events:<app_id>
    type_prefix: str = "org.tmforum"
    commit_interval_ms: int = Field(default=100, ge=1)
    max_batch: int = Field(default=2000, ge=1)
    # None: the command's own default (HTTP_PORTS), so `run`, `api` and `hub` share a host.
    http_port: int | None = Field(default=None, ge=0, le=65535)
    instance_id: str = Field(default_factory=socket.gethostname)
    reporting_system: ReportingSystem = Field(default_factory=ReportingSystem)
    envelope: Envelope = Field(default_factory=Envelope)
    history: int = Field(default=1, ge=1, le=100)
    entity_types: list[EntityType] = Field(default_factory=lambda: list(ENTITY_TYPES))
    max_record_bytes: int = Field(default=1024 * 1024, ge=1)
    max_json_depth: int = Field(default=64, ge=1, le=10_000)
    static_membership: bool = True
    # Local snapshots of the state (processor/state/snapshot.py); None keeps the state in memory
    # only and restores every assigned partition from the whole changelog.
    state_dir: Path | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # How long a command tries to reach Kafka before it gives up with exit code 4.
    connect_timeout_ms: int = Field(default=30_000, ge=100)
    # `run` logs a progress line this often; 0: never.
    progress_interval_s: float = Field(default=30.0, ge=0)
    # retention.ms of the two event topics when tmf-events creates them (a history of
    # events, a year by default); -1 keeps them forever.
    events_retention_ms: int = Field(default=365 * 24 * 3600 * 1000, ge=-1)

    # `tmf-events hub` (processor/hub/): REST listeners subscribed the TMF way.
    hub_topic: str = ""  # default: <app_id>-hub (compacted: subscriptions and positions)
    # Callback hosts allowed although they resolve to loopback, private or link-local
    # addresses: host names or CIDRs.
    hub_allowed_callback_hosts: list[str] = Field(default_factory=list)
    # Signs every delivery: X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body, hex>.
    hub_signing_secret: SecretStr | None = None
    hub_request_timeout_ms: int = Field(default=10_000, ge=1)
    hub_max_response_bytes: int = Field(default=64 * 1024, ge=0)
    hub_retry_initial_ms: int = Field(default=500, ge=1)
    hub_retry_max_ms: int = Field(default=60_000, ge=1)
    # Continuous failure for this long pauses a subscription; paused ones are probed.
    hub_pause_after_ms: int = Field(default=600_000, ge=0)
    hub_probe_interval_ms: int = Field(default=60_000, ge=1)
    # How often a subscription's delivery positions are written (a crash re-delivers at
    # most this much).
    hub_position_interval_ms: int = Field(default=1_000, ge=1)
    hub_max_subscriptions: int = Field(default=100, ge=1)

    # Where each value came from (processor/origins.py), for failure messages.
    _origins: Origins = PrivateAttr(default_factory=Origins)

    @field_validator("private_fields")
    @classmethod
    def _paths_not_empty(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"private field path {path!r} has an empty segment")
        return value

    @field_validator("hub_allowed_callback_hosts")
    @classmethod
    def _callback_hosts(cls, value: list[str]) -> list[str]:
        from processor.hub.callbacks import parse_allowed_hosts

        parse_allowed_hosts(value)  # raises ValueError naming the entry
        return value

    @field_validator("kafka")
    @classmethod
    def _kafka_properties(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        from processor.kafka_names import NAMES
        from processor.kafka_properties import GUARDED, unknown_properties

        for name in value:
            if name in GUARDED:
                raise problem(
                    f"kafka property {name} is set by tmf-events itself",
                    "kafka",
                    name,
                    hint=f"remove it ({GUARDED[name]})",
                )
        for name, reason in unknown_properties(value):
            if reason.startswith("No such configuration property"):
                guess = did_you_mean(name, NAMES)
                raise problem(
                    f"unknown kafka property {name}",
                    "kafka",
                    name,
                    hint=(f"{guess} " if guess else "")
                    + "librdkafka's CONFIGURATION.md lists the properties",
                )
            raise problem(f"kafka property {name}: {reason}", "kafka", name, hint="fix the value")
        return value

    @model_validator(mode="after")
    def _derived_defaults(self) -> Settings:
        if not self.changelog_topic:
            self.changelog_topic = f"{self.app_id}-state-changelog"
        if not self.dlq_topic:
            self.dlq_topic = f"{self.app_id}-dlq"
        if not self.source:
            self.source = f"urn:tmf-events:{self.app_id}"
        if not self.hub_topic:
            self.hub_topic = f"{self.app_id}-hub"
        if self.hub_signing_secret is not None and not self.hub_signing_secret.get_secret_value():
            self.hub_signing_secret = None  # an empty variable (compose's default) signs nothing
        if self.hub_retry_initial_ms > self.hub_retry_max_ms:
            raise problem(
                f"hub_retry_initial_ms ({self.hub_retry_initial_ms}) must not exceed "
                f"hub_retry_max_ms ({self.hub_retry_max_ms})",
                "hub_retry_initial_ms",
                hint="lower it or raise hub_retry_max_ms",
            )
        if self.reporting_system.id is None:
            self.reporting_system.id = self.app_id
        txn_timeout = int(self.kafka.get("transaction.timeout.ms", 10000))
        if self.commit_interval_ms >= txn_timeout:
            raise problem(
                f"commit_interval_ms ({self.commit_interval_ms}) must be well below the "
                f"transaction timeout ({txn_timeout} ms): a batch is one transaction",
                "commit_interval_ms",
                hint="lower it, or raise kafka's transaction.timeout.ms",
            )
        defaults = DEFAULT_STATE_FIELDS[self.tmf_version]
        self.state_fields = {t: list(self.state_fields.get(t, defaults[t])) for t in ENTITY_TYPES}
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `_config_file` values are passed through init as a separate, lower-priority source.
        return init_settings, env_settings, _YAML_SOURCE.get(settings_cls), file_secret_settings

    def origin(self, *path: str) -> str:
        """`<setting> from <where its value came from>`, for failure messages."""
        return self._origins.describe(*path)

    def with_origins(self, origins: Origins) -> Settings:
        self._origins = origins
        return self

    def port_for(self, command: str) -> int:
        """The HTTP port of a command: `http_port` when set, else the command's default."""
        return self.http_port if self.http_port is not None else HTTP_PORTS[command]

    def topic_for(self, entity_type: str) -> str:
        return self.service_topic if entity_type == "service" else self.resource_topic


# What load_settings raises: a configuration problem, told in one line (exit 2).
ConfigError = setting_errors.ConfigError


class _YamlSourceHolder:
    """Carries the `--config` file's content into `settings_customise_sources`."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
        return InitSettingsSource(settings_cls, init_kwargs=dict(self.data))


_YAML_SOURCE = _YamlSourceHolder()


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings; command-line `overrides` beat env vars, which beat the YAML file.

    Every problem is a ConfigError whose message names the setting and where its value came
    from; unknown `TMF_EVENTS_*` variables are refused like unknown keys in the file.
    """
    data: dict[str, Any] = {}
    path: Path | None = None
    lines: dict[tuple[str, ...], int] = {}
    flags = {k: "--" + k.replace("_", "-") for k, v in overrides.items() if v is not None}
    if config_file is not None:
        path = Path(config_file)
        data, lines = _read_file(path)
    origins = Origins(flags, os.environ, path, lines)
    check_environment(origins, Settings.model_fields)
    _YAML_SOURCE.data = data
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise from_validation(exc, origins, Settings.model_fields) from exc
    except SettingsError as exc:  # a source that could not be parsed at all
        raise ConfigError(str(exc), "fix the value") from exc
    finally:
        _YAML_SOURCE.data = {}
    return settings.with_origins(origins)


def _read_file(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    origin = "config from flag --config"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"cannot read config file {path}: {reason}", "check the path", origin=origin
        ) from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        reason = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(
            f"config file {where} is not valid YAML: {reason}", "fix the file", origin=origin
        ) from exc
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of setting names",
            "write one `name: value` per line",
            origin=origin,
        )
    return loaded, yaml_lines(text)


def setting_env_names() -> set[str]:
    """Every top-level env var name the settings read (used by the deploy drift tests)."""
    return {f"TMF_EVENTS_{name.upper()}" for name in Settings.model_fields}
