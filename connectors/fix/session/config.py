"""FIX session configuration: one `SessionConfig` per session, from a TOML file.

```toml
[[fix.session]]
name = "broker"                 # names the store files and log lines
role = "initiator"              # or "acceptor"
host = "127.0.0.1"
port = 9878
sender_comp_id = "BROKERFLOW"
target_comp_id = "BROKER"
begin_string = "FIX.4.4"        # FIX.4.2, FIX.4.4 or FIXT.1.1 (then default_appl_ver_id = "9")
username = "bf"                 # Username (553) / Password (554): sent by an initiator,
password = "secret"             #   required by an acceptor when set
heartbeat_s = 30                # HeartBtInt (108) an initiator asks for
store_dir = ".brokerflow/fix"   # persisted sequence numbers and sent messages ("" = memory)
dictionary = "/etc/venue/fix"   # file or directory (default: the shipped FIX 4.2/4.4 ones)
reset_on_logon = false          # ResetSeqNumFlag (141)=Y on every logon
max_message_size = 1048576      # bytes; a larger message is dropped and logged
```
Unknown keys and bad values are a `ConfigError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from connectors.config_file import read_config_document
from domain.backoff import Backoff
from domain.errors import ConfigError

BEGIN_STRINGS = ("FIX.4.2", "FIX.4.4", "FIXT.1.1")


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """One FIX session (see the module docstring for the TOML keys).

    Attributes beyond the TOML keys' names:
        max_latency_s: SendingTime (52) further than this from our clock is rejected (QuickFIX's
            MaxLatency, 120 s).
        logout_timeout_s: how long we wait for the Logout answering ours.
        logon_timeout_s: how long we wait for a Logon (answer) after connecting.
        reconnect_min_s / reconnect_max_s: the initiator's exponential backoff bounds.
        validate: check inbound messages against the data dictionary (the session refuses to
            start when none is found for its version).
    """

    sender_comp_id: str
    target_comp_id: str
    begin_string: str = "FIX.4.4"
    name: str = ""
    role: str = "initiator"
    host: str = "127.0.0.1"
    port: int = 0
    default_appl_ver_id: str = ""
    username: str = ""
    password: str = ""
    heartbeat_s: int = 30
    store_dir: str = ""
    dictionary: str = ""
    reset_on_logon: bool = False
    max_message_size: int = 1 << 20
    max_latency_s: float = 120.0
    logout_timeout_s: float = 2.0
    logon_timeout_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    validate: bool = True

    def __post_init__(self) -> None:
        if self.begin_string not in BEGIN_STRINGS:
            msg = f"begin_string {self.begin_string!r} is not one of {', '.join(BEGIN_STRINGS)}"
            raise ConfigError(msg)
        if self.begin_string == "FIXT.1.1" and not self.default_appl_ver_id:
            msg = "begin_string FIXT.1.1 needs default_appl_ver_id (e.g. \"9\" for FIX 5.0 SP2)"
            raise ConfigError(msg)
        if self.role not in ("initiator", "acceptor"):
            msg = f"role {self.role!r} is not initiator or acceptor"
            raise ConfigError(msg)
        if not self.sender_comp_id or not self.target_comp_id:
            msg = "sender_comp_id and target_comp_id must not be empty"
            raise ConfigError(msg)
        if self.heartbeat_s < 0 or self.max_message_size < 64:
            msg = "heartbeat_s must be >= 0 and max_message_size >= 64"
            raise ConfigError(msg)
        if not self.name:
            object.__setattr__(
                self, "name", f"{self.begin_string}-{self.sender_comp_id}-{self.target_comp_id}"
            )

    @property
    def reconnect_backoff(self) -> Backoff:
        """The initiator's waits between connection attempts."""
        return Backoff(self.reconnect_min_s, self.reconnect_max_s)

    @property
    def key(self) -> tuple[str, str, str]:
        """(BeginString, SenderCompID, TargetCompID): how an acceptor finds the session."""
        return (self.begin_string, self.sender_comp_id, self.target_comp_id)


_FIELDS = {f.name: f for f in fields(SessionConfig)}


def session_from_mapping(values: dict[str, Any], where: str = "session") -> SessionConfig:
    """Build a `SessionConfig` from a TOML table, naming the key at fault on error."""
    for key in values:
        if key not in _FIELDS:
            msg = f"{where}: unknown key {key!r} (known: {', '.join(sorted(_FIELDS))})"
            raise ConfigError(msg)
    for required in ("sender_comp_id", "target_comp_id"):
        if required not in values:
            msg = f"{where}: {required} is missing"
            raise ConfigError(msg)
    converted: dict[str, Any] = {}
    for key, value in values.items():
        expected = _FIELDS[key].type
        kind = {"str": str, "int": int, "float": float, "bool": bool}.get(str(expected), str)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            msg = f"{where}: {key} = {value!r} is not a {kind.__name__}"
            raise ConfigError(msg)
        converted[key] = value
    try:
        return SessionConfig(**converted)
    except ConfigError as exc:
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from None


def load_sessions(path: Path) -> list[SessionConfig]:
    """The `[[fix.session]]` tables of a TOML file.

    Raises:
        ConfigError: the file cannot be read or parsed, or a session is invalid.
    """
    return [session_from_mapping(table, where) for table, where in session_tables(path)]


def session_tables(path: Path, document: dict[str, Any] | None = None) -> list[tuple[dict, str]]:
    """The raw `[[fix.session]]` tables of a TOML file (none without a [fix] table), each with
    the place to name in an error.

    Args:
        path: the file, named in errors.
        document: its parsed contents when the caller has read it already (`flows.settings`
            reads the `--config` file once); None reads `path`.

    Raises:
        ConfigError: the file cannot be read or parsed, or [fix.session] is not an array.
    """
    if document is None:
        document = read_config_document(path)
    tables = document.get("fix", {}).get("session", [])
    if not isinstance(tables, list):
        msg = f"{path}: [fix.session] must be an array of tables ([[fix.session]])"
        raise ConfigError(msg)
    return [(table, f"{path} [[fix.session]] #{index + 1}") for index, table in enumerate(tables)]
