"""Flows layer: the surveillance models' parameters, `[surveillance.MODEL]` of the settings.

`PARAMETERS` says what each table accepts and how a value becomes the model's keyword argument;
`model_parameters` builds those arguments (`flows.settings.Settings.surveillance_parameters`),
for `flows.surveillance` to construct the models of `domain.surveillance` with.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain.errors import ConfigError
from domain.surveillance import NS_PER_S
from domain.time_of_day import time_of_day_ns

# model -> parameter -> (the model's keyword, conversion): what `[surveillance.MODEL]` accepts.
_S = NS_PER_S
PARAMETERS: dict[str, dict[str, tuple[str, Any]]] = {
    "self_match": {"window_s": ("window_ns", lambda v: int(float(v) * _S))},
    "round_trips": {
        "min_round_trips": ("min_round_trips", int),
        "max_net_fraction": ("max_net_fraction", lambda v: Decimal(str(v))),
    },
    "spoofing": {
        "size_multiple": ("size_multiple", lambda v: Decimal(str(v))),
        "cancel_fraction": ("cancel_fraction", lambda v: Decimal(str(v))),
        "window_s": ("window_ns", lambda v: int(float(v) * _S)),
        "max_resting_hours": ("max_resting_ns", lambda v: int(float(v) * 3600 * _S)),
    },
    "marking_the_close": {
        "close_utc": ("close_ns_of_day", lambda v: time_of_day_ns(str(v))),
        "window_minutes": ("window_ns", lambda v: int(float(v) * 60 * _S)),
        "window_share": ("window_share", lambda v: Decimal(str(v))),
        "day_share": ("day_share", lambda v: Decimal(str(v))),
    },
    "pump_and_dump": {
        "volume_share": ("volume_share", lambda v: Decimal(str(v))),
        "rise": ("rise", lambda v: Decimal(str(v))),
        "within_hours": ("within_ns", lambda v: int(float(v) * 3600 * _S)),
    },
    "order_to_trade": {
        "max_ratio": ("max_ratio", int),
        "min_orders": ("min_orders", int),
    },
    # Not a model: findings of one model, subject and symbol this close together are one alert.
    "episodes": {"gap_minutes": ("gap_ns", lambda v: int(float(v) * 60 * _S))},
}


def model_parameters(config: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The models' keyword arguments from `Settings.surveillance`; one-line error on a typo."""
    out: dict[str, dict[str, Any]] = {name: {} for name in PARAMETERS}
    for model, params in config.items():
        known = PARAMETERS.get(model)
        if known is None:
            msg = f"unknown surveillance model {model!r}; models: {', '.join(PARAMETERS)}"
            raise ConfigError(msg)
        for name, value in params.items():
            if name not in known:
                msg = (f"unknown parameter {model}.{name}; "
                       f"{model} takes {', '.join(known)}")  # fmt: skip
                raise ConfigError(msg)
            keyword, convert = known[name]
            try:
                out[model][keyword] = convert(value)
            except (ValueError, ArithmeticError):
                msg = f"surveillance parameter {model}.{name}: {value!r} is not valid"
                raise ConfigError(msg) from None
    return out
