"""Data quality: run a `quality.suites.Suite` over a `Frame` with Great Expectations 1.x.

GX takes seconds to import, so it is imported here only, when the first validator is built
(`quality.runner` does that before a run starts, in `warm_up`). One ephemeral GX context per
validator; each suite becomes a GX `ExpectationSuite` once; every micro-batch is a pandas
DataFrame handed to a whole-dataframe batch definition and validated with the COMPLETE result
format, whose `unexpected_index_list` names the failing rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from quality.frames import Frame
from quality.suites import Check, Suite

DATASOURCE = "brokerflow"
_NOT_SHOWN = ("value_set", "batch_id")  # long (every instrument) or internal to GX


@dataclass(slots=True)
class Validation:
    """The outcome of validating one micro-batch.

    Attributes:
        failed: row index -> the checks that row failed.
        results: per check: name, expectation, success, unexpected_count, element_count.
    """

    suite: str
    rows: int
    success: bool
    seconds: float
    failed: dict[int, list[Check]] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_failed(self) -> int:
        return len(self.failed)


def warm_up() -> float:
    """Import GX now (seconds it took), so that a run does not pay for it mid-stream."""
    started = time.perf_counter()
    import great_expectations  # noqa: F401

    return time.perf_counter() - started


class GxValidator:
    """Validates frames against suites with one ephemeral GX context."""

    def __init__(self, suites: list[Suite]) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._context = context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_pandas(DATASOURCE)
        self._suites = {s.name: s for s in suites}
        self._gx_suites: dict[str, Any] = {}
        self._batches: dict[str, Any] = {}
        for suite in suites:
            gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name))
            for check in suite.checks:
                expectation = getattr(gxe, check.expectation)(**check.kwargs)
                gx_suite.add_expectation(expectation)
            self._gx_suites[suite.name] = gx_suite
            asset = source.add_dataframe_asset(suite.name)
            self._batches[suite.name] = asset.add_batch_definition_whole_dataframe("micro_batch")

    @property
    def context(self) -> Any:
        """The GX data context (for Data Docs)."""
        return self._context

    def validate(self, suite_name: str, frame: Frame) -> Validation:
        """Validate one frame; failing rows are reported by their position in the frame."""
        import pandas as pd

        started = time.perf_counter()
        suite = self._suites[suite_name]
        df = pd.DataFrame(frame.columns)
        batch = self._batches[suite_name].get_batch(batch_parameters={"dataframe": df})
        outcome = batch.validate(
            self._gx_suites[suite_name], result_format={"result_format": "COMPLETE"}
        )
        by_type_and_column = {_key(c.expectation, c.kwargs): c for c in suite.checks}
        failed: dict[int, list[Check]] = {}
        results: list[dict[str, Any]] = []
        for result in outcome.results:
            config = result.expectation_config
            check = by_type_and_column.get(_key(type_name(config.type), config.kwargs))
            detail = result.result or {}
            results.append(
                {
                    "check": check.name if check else config.type,
                    "expectation": config.type,
                    "success": bool(result.success),
                    "element_count": detail.get("element_count"),
                    "unexpected_count": detail.get("unexpected_count", 0),
                    "kwargs": {
                        k: v for k, v in config.kwargs.items() if k not in ("value_set", "batch_id")
                    },
                }
            )
            if not result.success and check is not None:
                for index in detail.get("unexpected_index_list") or ():
                    failed.setdefault(int(index), []).append(check)
        return Validation(
            suite=suite_name,
            rows=len(frame),
            success=bool(outcome.success),
            seconds=time.perf_counter() - started,
            failed=failed,
            results=results,
        )


def type_name(snake: str) -> str:
    """GX's snake-case expectation type -> its class name (`expect_x_y` -> `ExpectXY`)."""
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def _key(expectation: str, kwargs: dict[str, Any]) -> tuple[str, str, str]:
    name = expectation.lower()
    return name, str(kwargs.get("column") or kwargs.get("column_A")), str(kwargs.get("column_B"))
