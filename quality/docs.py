"""Data quality: GX Data Docs (static HTML) of the suites and of the latest stored validations.

The validations are rebuilt from `dq_results` rows (per expectation: success, element and
unexpected counts), since the validator threads keep no GX stores of their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from quality.suites import Suite
from quality.validator import GxValidator

SITE = "brokerflow_dq"


def build_docs(
    suites: list[Suite], results: Iterable[tuple[dt.datetime, str, bool, list[dict]]], out: Path
) -> Path:
    """Write Data Docs for `suites` and `results` (run_at, suite, success, per-check results)
    into `out`; return the index page."""
    from great_expectations.core import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    out.mkdir(parents=True, exist_ok=True)
    validator = GxValidator(suites)
    context: Any = validator.context
    context.add_data_docs_site(
        site_name=SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(out.resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    for run_at, suite_name, success, checks in results:
        gx_suite = context.suites.get(suite_name)
        configs = {
            (c.type, str(c.kwargs.get("column") or c.kwargs.get("column_A"))): c
            for c in (e.configuration for e in gx_suite.expectations)
        }
        evrs = []
        for check in checks:
            kwargs = check.get("kwargs", {})
            config = configs.get(
                (check["expectation"], str(kwargs.get("column") or kwargs.get("column_A")))
            )
            if config is None:
                continue
            evrs.append(
                ExpectationValidationResult(
                    success=check["success"],
                    expectation_config=config,
                    result={
                        "element_count": check.get("element_count"),
                        "unexpected_count": check.get("unexpected_count"),
                    },
                )
            )
        run_id = RunIdentifier(run_name=f"{suite_name}-{run_at:%Y%m%dT%H%M%S%f}", run_time=run_at)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
            run_id=run_id,
            batch_identifier=suite_name,
        )
        result = ExpectationSuiteValidationResult(
            success=success, results=evrs, suite_name=suite_name, meta={"run_id": run_id}
        )
        context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=[SITE])
    return out / "index.html"
