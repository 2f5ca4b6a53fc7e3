"""Connectors layer: reading the `--config` TOML file for a connector's own tables.

Only where no caller has parsed the file already: `flows.settings` reads it once for a command
and hands its document to the connectors (`[[fix.session]]`, `[reference]`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from domain.errors import ConfigError


def read_config_document(path: Path) -> dict[str, Any]:
    """The parsed TOML file.

    Raises:
        ConfigError: the file cannot be read or parsed (the message starts with the path).
    """
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        msg = f"{path}: {exc}"
        raise ConfigError(msg) from exc
