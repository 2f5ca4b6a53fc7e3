"""Flows layer: the one frozen `Settings` of a brokerflow process, and how it is loaded.

Precedence, highest first: the `--data-dir` flag, `BROKERFLOW_*` environment variables, keys of the
TOML file given with `--config` (spelt `BROKERFLOW_REDIS_URL` or `redis_url`, any case), defaults.
A store whose URL is unset is served by an embedded server under `data_dir` (`brokerflow.services`).

The TOML file is read once, here. Its tables that are not settings keys ride on the same model:
`[[fix.session]]` (`Settings.fix_sessions`) and `[reference]` (`Settings.reference_inbox`) are
checked by their connectors when a command asks for them, with the errors they always had; the
`[surveillance.MODEL]` tables become the models' parameters in `Settings.surveillance_parameters`.
It lives in `flows/` (re-exported by `brokerflow.settings`) so the flows need not import the CLI.
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from domain.errors import ConfigError

if TYPE_CHECKING:
    from connectors.fix.live import LiveSession

ENV_PREFIX = "BROKERFLOW_"

# The TOML values of the `load_settings` call in progress; read by `_TomlSource`.
_toml_values: ContextVar[dict[str, Any] | None] = ContextVar("_toml_values", default=None)


class _TomlSource(PydanticBaseSettingsSource):
    """Settings source for the already-normalised keys of the `--config` TOML file."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        values = _toml_values.get() or {}
        return values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_toml_values.get() or {})


class MarketStatusSettings(BaseModel):
    """The index circuit breaker (docs/operations.md, "The index circuit breaker").

    Attributes:
        index_symbol: the venue's index symbol (its trades are the index); wins over `basket`.
        basket: the symbols of a computed index: a list (equal weights) or a table symbol ->
            weight; the index is the weighted mean of each one's last trade over its previous
            close.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    index_symbol: str | None = Field(default=None, min_length=1)
    basket: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)

    @field_validator("basket", mode="before")
    @classmethod
    def _equal_weights(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return dict.fromkeys(value, 1.0)
        return value


class Settings(BaseSettings):
    """Configuration of one brokerflow process (CONTRACT.md, "Where the data goes").

    Attributes:
        redis_url: `redis://host:port/db`; None means an embedded Redis under `data_dir`.
        postgres_dsn: `postgresql://…`; None means an embedded PostgreSQL under `data_dir`.
        clickhouse_url: `http(s)://…` or `chdb:///path`; None means `chdb://` under `data_dir`.
        audit_retention_years: how long `audit_log` keeps a row (a ClickHouse TTL on its
            event time; 5 years, the design's retention; archive first to keep them longer).
        pseudonym_dsn: a PostgreSQL database of its own for `pseudonym_map` (`brokerflow gdpr
            pseudonymise`), kept apart from the data it reverses; None: the map goes to
            `pseudonym_map` in the ledger database and in ClickHouse, next to the data.
        pseudonym_key_file: the pseudonymisation key; None means `<data_dir>/pseudonym.key`.
        kafka_bootstrap: Kafka bootstrap servers; None means no Kafka.
        data_dir: where embedded services and generated secrets live.
        edge_secret: HS256 key for edge tokens; None means a random key kept in `data_dir`.
        edge_port: port of `brokerflow edge` (the WebSocket edge and the console).
        edge_flush_ms: the edge sends each client its pending quotes at most once per this
            many ms (several updates in one frame); alerts go at once.
        coalesce_ms: quote coalescing window; one update per symbol per window at most.
        coalesce_min_move_bps: inside a window, publish early only on a move of at least this
            many basis points; 0 turns the early publish off.
        instruments: the instruments the quote flow accepts; None accepts any symbol.
            From the environment either a JSON list or comma-separated symbols.
        redis_stream_maxlen: approximate cap of the `stream:*` Redis streams.
        stop_reference: the price stops trigger on unless an order says otherwise: last trade,
            bid, ask or mid.
        margin_mark_ms: marks for margin are published at most once per this many ms of event
            time per symbol, and the account shards judge their accounts once per window of
            this many ms (the screen's cost is per window, not per mark).
        margin_grace_s: event time a margin call may stand before LIQUIDATION.
        margin_concentration_share: a position above this share of the gross value raises a
            CONCENTRATION alert (and, with a rate, the add-on).
        margin_concentration_rate: the maintenance rate of such a position (None: no add-on).
        margin_concentration_rearm: one CONCENTRATION alert per episode: a flagged position
            re-arms only once its share falls this far below the threshold (0.05: below 20 %
            for a 25 % threshold), and no sooner than `margin_concentration_rearm_after_s`
            of event time after the episode began (a position traded in and out every few
            seconds is one episode).
        margin_shards: account shards of the margin flow (None: 1 for a single worker, else
            8 or twice the workers of the run). Each shard screens its accounts once per
            window, so one worker is fastest with one; a recovery snapshot must be resumed
            with the count it was taken with.
        margin_cure_band: a margin call is cured only once the excess is at least this share
            of the gross value (0.02: back at a 32 % equity ratio for a 30 % maintenance rate);
            an account wavering at the line is called once, not on every tick.
        margin_row_change: `account_margin` is written on a fill, a change of state, and when
            equity or gross value has moved by more than this fraction of the last row's
            gross value (0.05: 5 %); not on every look. At 1 %, a volatile tape moves nearly
            every account of a large book that far within seconds: bench margin's 1,000,000
            accounts needed 895,632 exact evaluations in 20 s of event time (17,456 quotes/s,
            margin-call p99 3.98 s after the first second), against 9,321 at 5 % (110,447
            quotes/s, 652 ms).
        surveillance: model -> {parameter: value}, e.g. a TOML table
            `[surveillance.round_trips]` with `min_round_trips = 12` (checked and converted
            by `surveillance_parameters`); from the environment, a JSON object.
        surveillance_late_s: execution reports up to this much older than the latest event
            are taken out of order; older ones become dead letters.
        session_close_utc: "HH:MM" UTC at which Day orders expire (21:00 = 16:00 New York
            in winter).
        sink_retry_s: how long a sink retries a store that is down (backoff from 0.2 s up to
            5 s between tries) before the flow stops with the error.
        dq: validate sampled micro-batches of quotes and fills with Great Expectations
            (`quality/`); failing rows become dead letters, results go to `dq_results`.
            Unset: on for live runs (`run`, `demo`), off for replays (whose sampled
            letters would depend on timing, and which pay the validator's start-up).
        dq_batch_rows: validate a suite when this many rows wait.
        dq_interval_s: or when its oldest waiting row waited this long (wall time).
        dq_sample_share: share of micro-batches offered to the validator (1.0: all).
        dq_budget_share: the validator's CPU time may not exceed this share of wall time;
            micro-batches beyond it are skipped and counted as not covered.
        dq_max_event_age_s / dq_max_event_ahead_s: event time plausibility bounds, against
            the wall clock live, against the micro-batch's median event time in a replay.
        dq_px_band_bps: how far a fill's LastPx may be from the market (last trade, else mid).
        metrics_port: serve Prometheus metrics on this port; 0 or unset: off (`brokerflow
            demo` serves on a default port).
        log_format: "text" lines or "json" lines (one object per event) on stderr.
        price_alerts_max_per_user: how many ACTIVE price alerts a trader may hold; a create
            beyond it is refused, naming the limit (`sinks.price_alerts`).
        market_status: the index circuit breaker (`MarketStatusSettings`; a TOML table
            `[market_status]`, from the environment a JSON object); off unless it names an
            index symbol or a basket.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        env_ignore_empty=True,
    )

    redis_url: str | None = None
    postgres_dsn: str | None = None
    clickhouse_url: str | None = None
    audit_retention_years: int = Field(default=5, ge=1, le=100)
    pseudonym_dsn: str | None = None
    pseudonym_key_file: Path | None = None
    kafka_bootstrap: str | None = None
    data_dir: Path = Path(".brokerflow")
    edge_secret: SecretStr | None = None
    edge_port: int = Field(default=8765, gt=0, lt=65536)
    edge_flush_ms: int = Field(default=25, ge=1, le=1000)
    coalesce_ms: int = Field(default=100, gt=0)
    coalesce_min_move_bps: float = Field(default=0.0, ge=0.0)
    instruments: Annotated[list[str] | None, NoDecode] = None
    redis_stream_maxlen: int = Field(default=100_000, gt=0)
    stop_reference: Literal["last", "bid", "ask", "mid"] = "last"
    session_close_utc: str = Field(default="21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    margin_mark_ms: int = Field(default=250, gt=0)
    margin_grace_s: int = Field(default=3600, ge=0)
    margin_concentration_share: float = Field(default=0.25, gt=0, lt=1)
    margin_concentration_rate: float | None = Field(default=None, gt=0, le=1)
    margin_concentration_rearm: float = Field(default=0.05, ge=0, lt=1)
    margin_concentration_rearm_after_s: float = Field(default=3600.0, ge=0)
    margin_row_change: float = Field(default=0.05, ge=0, lt=1)
    margin_cure_band: float = Field(default=0.02, ge=0, lt=1)
    margin_shards: int | None = Field(default=None, gt=0)
    surveillance: dict[str, dict[str, Any]] = Field(default_factory=dict)
    surveillance_late_s: float = Field(default=60.0, ge=0)
    dq: bool | None = None  # None: on live, off in replays (docs/operations.md, "Data quality")
    dq_batch_rows: int = Field(default=5_000, gt=0)
    dq_interval_s: float = Field(default=1.0, gt=0)
    dq_sample_share: float = Field(default=1.0, gt=0, le=1)
    dq_budget_share: float = Field(default=0.05, gt=0, le=1)
    dq_max_event_age_s: float = Field(default=86_400.0, gt=0)
    dq_max_event_ahead_s: float = Field(default=5.0, ge=0)
    dq_px_band_bps: float = Field(default=500.0, gt=0)
    metrics_port: int = Field(default=0, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"
    sink_retry_s: float = Field(default=30.0, ge=0)
    price_alerts_max_per_user: int = Field(default=100, gt=0)
    market_status: MarketStatusSettings = Field(default_factory=lambda: MarketStatusSettings())
    # The --config file and its whole document (`load_settings`): the tables read by connectors.
    _config_file: Path | None = PrivateAttr(default=None)
    _document: dict[str, Any] | None = PrivateAttr(default=None)

    @field_validator("instruments", mode="before")
    @classmethod
    def _split_instruments(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: init kwargs (flags), environment, then the TOML file."""
        return (init_settings, env_settings, _TomlSource(settings_cls))

    def fix_sessions(self) -> list[LiveSession]:
        """The `[[fix.session]]` tables of the `--config` file as sessions (none without one).

        Raises:
            ConfigError: a session is invalid (`connectors.fix.live.load_live_sessions`).
        """
        if self._config_file is None:
            return []
        from connectors.fix.live import load_live_sessions

        return load_live_sessions(self._config_file, self._document)

    def reference_inbox(self) -> Path | None:
        """The `[reference] inbox` folder of the `--config` file, or None.

        Raises:
            ConfigError: an unknown key, or no such folder (`connectors.reference_inbox`).
        """
        if self._config_file is None:
            return None
        from connectors.reference_inbox import load_reference_inbox

        return load_reference_inbox(self._config_file, self._document)

    def surveillance_parameters(self) -> dict[str, dict[str, Any]]:
        """Each surveillance model's keyword arguments from `surveillance` (every model named,
        unset parameters left to the model's defaults).

        Raises:
            ConfigError: an unknown model or parameter, or a bad value, in one line.
        """
        from flows.surveillance_parameters import model_parameters

        return model_parameters(self.surveillance)

    def masked(self) -> dict[str, Any]:
        """Return the settings as plain values with secrets and URL passwords masked.

        Returns:
            A dict safe to log: `edge_secret` is "***" when set and credentials in URLs and DSNs
            are replaced by "***".
        """
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "***"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, BaseModel):
                value = value.model_dump()
            elif isinstance(value, str) and name.endswith(("_url", "_dsn")):
                value = mask_url(value)
            out[name] = value
        return out

    def describe(self) -> str:
        """Return a one-line `key=value` summary for start-up logs, secrets masked."""
        return " ".join(f"{key}={value}" for key, value in self.masked().items())


def mask_url(url: str) -> str:
    """Replace the password of a URL or libpq `key=value` DSN with "***".

    >>> mask_url("postgresql://bob:hunter2@db:5432/x")
    'postgresql://bob:***@db:5432/x'
    """
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    words = []
    for word in url.split():
        key, sep, _ = word.partition("=")
        words.append(f"{key}=***" if sep and key.lower() == "password" else word)
    return " ".join(words)


def _field_name(key: str) -> str:
    name = key.strip().lower()
    prefix = ENV_PREFIX.lower()
    return name[len(prefix) :] if name.startswith(prefix) else name


def _read_toml(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        msg = f"--config {path}: no such file"
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"--config {path}: not valid TOML ({exc})"
        raise ConfigError(msg) from None
    return _setting_values(raw, path), raw


def _setting_values(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """The settings keys of a TOML document, by field name."""
    fields = Settings.model_fields
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("fix", "reference"):
            continue  # [[fix.session]], [reference]: Settings.fix_sessions, .reference_inbox
        name = _field_name(key)
        if name not in fields:
            msg = f"--config {path}: unknown key {key!r}"
            raise ConfigError(msg)
        if name in values:
            msg = f"--config {path}: key {key!r} given twice"
            raise ConfigError(msg)
        values[name] = value
    return values


def _one_line(exc: ValidationError, toml_path: Path | None) -> str:
    error = exc.errors()[0]
    loc = error.get("loc") or ("?",)
    name = str(loc[0])
    where = f"{name} ({ENV_PREFIX}{name.upper()})"
    if error.get("type") == "extra_forbidden":  # a table's key names its table: market_status.x
        return f"unknown setting {'.'.join(str(part) for part in loc)!r}"
    problem = error.get("msg", "invalid value")
    value = error.get("input")
    shown = "" if isinstance(value, dict) or value is None else f"; value was {value!r}"
    origin = f" (env or --config {toml_path})" if toml_path else ""
    return f"bad setting {where}{origin}: {problem}{shown}"


def load_settings(config: Path | None = None, data_dir: Path | None = None) -> Settings:
    """Build the process settings from the environment, a TOML file and the `--data-dir` flag.

    Args:
        config: TOML file given with `--config`; its keys are setting names with or without the
            `BROKERFLOW_` prefix, in any case. Environment variables win over it.
        data_dir: the `--data-dir` flag; wins over everything.

    Returns:
        The frozen settings.

    Raises:
        ConfigError: unreadable TOML, an unknown key or a bad value; the message names the key.
    """
    toml_values, document = _read_toml(config) if config is not None else ({}, None)
    init: dict[str, Any] = {"data_dir": data_dir} if data_dir is not None else {}
    token = _toml_values.set(toml_values)
    try:
        settings = Settings(**init)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, config)) from None
    finally:
        _toml_values.reset(token)
    settings._config_file = config
    settings._document = document
    return settings
