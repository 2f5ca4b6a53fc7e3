"""Data quality: Great Expectations suites over micro-batches of the live streams (issue 9).

`suites` holds the expectations as plain data (no GX import), `frames` turns stream items into
columns, `validator` runs a suite with GX, `runner` samples micro-batches off the hot path in a
background thread, `store` writes `dq_results` and the failing rows' dead letters, `sink` is the
Bytewax sink that feeds the runner, `docs` builds GX Data Docs.
"""
