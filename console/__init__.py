"""Console layer: the analysts' workbench — the HTTP API under `/api/`, its pages, and the
read and workflow code the `brokerflow alerts` and `report` commands share with it."""
