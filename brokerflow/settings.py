"""Application layer: the process settings, re-exported from their home `flows.settings`.

The model lives below the CLI so that the flows (and anything else the CLI calls) read it without
importing this package; this module keeps the CLI's import path.
"""

from __future__ import annotations

from flows.settings import (
    ENV_PREFIX,
    MarketStatusSettings,
    Settings,
    load_settings,
    mask_url,
)

__all__ = ["ENV_PREFIX", "MarketStatusSettings", "Settings", "load_settings", "mask_url"]
