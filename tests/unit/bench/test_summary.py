"""bench/summary.py: the one table of every benchmark, built from result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import common, summary
from bench.command import BENCHMARKS, _apply_quick
from brokerflow.cli import build_parser, main


def _result(name: str, unit: str, value: float | None, goal: float | None, yardsticks: dict,
            date: str = "2026-12-04T17:00:00+00:00", mops: float = 30.0,
            commit: str | None = None) -> dict:
    return {"name": name, "unit": unit, "value": value, "goal": goal, "yardsticks": yardsticks,
            "machine": "AMD EPYC, 2 cores", "python_loop_mops": mops, "date": date,
            "commit": commit}


def _write(directory: Path, *results: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for doc in results:
        (directory / f"{doc['name']}.json").write_text(json.dumps(doc))
    return directory


SAMPLES = (
    _result("edge", "p99 ms XADD->client, 1000 clients x 10000/s", 185, 50.0,
            {"bare picows broadcast p99 ms": 64}, date="2026-11-26T02:00:00+00:00", mops=21.6),
    _result("ingest", "messages/s", 55_933, 100_000,
            {"decoder_only_msgs_per_s": 128_451, "coalescing_ratio_msgs_per_quote": 1.71}),
    _result("surveillance", "reports/s", 22_947, 20_000,
            {"end_to_end_reports_per_s": 22_947, "models_off_reports_per_s": 50_020}),
)

# A margin result as `bench margin` writes it: the full flow is the value, the engine's
# figures are `engine_…` keys; its yardstick is in accounts/s.
MARGIN = _result(
    "margin", "messages/s", 30_183, 100_000,
    {"flow_messages_per_s": 30_183, "flow_quotes_only_messages_per_s": 60_366,
     "flow_accounts": 2_000, "flow_messages": 205_000,
     "flow_alerts": {"MARGIN_CALL": 20, "MARGIN_CALL_CURED": 15},
     "engine_quotes_per_s_sustained_min_window": 122_854, "engine_quotes_per_s_overall": 177_983,
     "engine_accounts": 1_000_000, "engine_holdings_per_account": 20,
     "batch_full_recompute_accounts_per_s": 50_539,
     "engine_margin_call_latency_p50_ms": 639.4, "engine_margin_call_latency_p99_ms": 1_218.8,
     "engine_margin_call_latency_after_first_second_p99_ms": 958.8,
     "engine_margin_call_latency_goal_p99_ms": 1_000.0,
     "engine_margin_call_latency_samples": 25_720},
    commit="0eee0d5844e0e1eb597f90e75e72bb1d7e40df57-dirty",
)  # fmt: skip


def _rows(tmp_path: Path, *results: dict) -> dict[str, dict]:
    doc = summary.build_summary(summary.load_results(_write(tmp_path, *results), BENCHMARKS))
    return {row["benchmark"]: row for row in doc["rows"]}


def test_summary_rows_put_each_figure_next_to_its_yardstick_and_goal(tmp_path):
    rows = _rows(tmp_path, *SAMPLES)
    ingest = rows["ingest"]
    assert (ingest["figure"], ingest["yardstick"], ingest["yardstick_name"]) == (
        55_933, 128_451, "decoder alone"
    )
    assert ingest["ratio"] == pytest.approx(0.435, abs=1e-3)
    assert ingest["met"] is False
    assert "1.71 messages per published quote" in ingest["details"]
    assert rows["surveillance"]["met"] is True
    assert rows["surveillance"]["ratio"] == pytest.approx(0.459, abs=1e-3)


def test_summary_latency_goal_is_met_from_below(tmp_path):
    edge = _rows(tmp_path, *SAMPLES)["edge"]
    assert edge["better"] == "lower" and edge["met"] is False
    assert edge["ratio"] == pytest.approx(185 / 64, abs=1e-3)
    met = _rows(tmp_path / "b", {**SAMPLES[0], "value": 40})["edge"]
    assert met["met"] is True


def test_summary_orders_rows_as_the_benchmarks_run_and_keeps_unknown_ones(tmp_path):
    other = _result("zeta", "p50 ms", 3.0, None, {})
    doc = summary.build_summary(
        summary.load_results(_write(tmp_path, *SAMPLES, other), BENCHMARKS)
    )
    assert [r["benchmark"] for r in doc["rows"]] == ["ingest", "surveillance", "edge", "zeta"]
    zeta = doc["rows"][-1]
    assert zeta["yardstick"] is None and zeta["ratio"] is None and zeta["met"] is None
    assert zeta["better"] == "lower"
    assert (doc["goals_met"], doc["goals"]) == (1, 3)
    assert doc["dates"] == ["2026-11-26", "2026-12-04"]
    assert doc["python_loop_mops"] == [21.6, 30.0]


def test_summary_skips_its_own_file_and_unreadable_ones(tmp_path):
    directory = _write(tmp_path, SAMPLES[1])
    (directory / "summary.json").write_text(json.dumps({"rows": []}))
    (directory / "half-written.json").write_text('{"name": "ingest", "val')
    assert [r["name"] for r in summary.load_results(directory)] == ["ingest"]


def test_summary_missing_yardstick_gives_no_ratio(tmp_path):
    # A quick stops run without its end-to-end part: the engine row still stands.
    stops = _result("stops", "quotes/s", 37_012, 100_000, {"engine_trigger_latency_p50_us": 101.5})
    rows = _rows(tmp_path, stops)
    assert rows["stops end to end"]["figure"] is None
    assert rows["stops end to end"]["met"] is None
    assert rows["stops, engine only"]["figure"] == 37_012


def test_summary_renders_text_and_markdown(tmp_path):
    doc = summary.build_summary(summary.load_results(_write(tmp_path, *SAMPLES), BENCHMARKS))
    text = summary.render_text(doc)
    assert text.splitlines()[0].split() == [
        "benchmark", "figure", "unit", "yardstick", "ratio", "goal", "met?", "commit"
    ]
    ingest_line = next(line for line in text.splitlines() if line.startswith("ingest"))
    assert "55,933" in ingest_line and "128,451 (decoder alone)" in ingest_line
    assert "≥ 100,000" in ingest_line and ingest_line.split()[-2:] == ["no", "?"]
    assert "goals met: 1 of 3" in text
    md = summary.render_markdown(doc)
    assert "| `ingest` | 55,933 messages/s | ≥ 100,000 | **no** | decoder alone: 128,451 |" in md
    assert md.splitlines()[0].endswith("| commit |")
    assert "2026-11-26 to 2026-12-04" in md


def test_summary_write_and_readme_table_between_markers(tmp_path):
    doc = summary.build_summary(summary.load_results(_write(tmp_path, *SAMPLES), BENCHMARKS))
    json_path, md_path = summary.write_summary(doc, tmp_path)
    assert json.loads(json_path.read_text())["rows"][0]["benchmark"] == "ingest"
    assert "| `surveillance` |" in md_path.read_text()
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{summary.README_START}\n| old |\n{summary.README_END}\nafter\n")
    assert summary.update_readme(readme, doc)
    text = readme.read_text()
    assert "| old |" not in text and "| `edge` |" in text
    assert text.startswith("intro\n") and text.endswith(f"{summary.README_END}\nafter\n")
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    assert not summary.update_readme(plain, doc)
    assert plain.read_text() == "no markers\n"


def test_bench_summary_only_builds_the_table_without_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "DATA_DIR", tmp_path)
    _write(tmp_path / "quick-results", *SAMPLES)
    assert main(["bench", "--summary-only", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "decoder alone" in out and "goals met: 1 of 3" in out
    written = json.loads((tmp_path / "quick-results" / "summary.json").read_text())
    assert len(written["rows"]) == 3
    assert (tmp_path / "quick-results" / "SUMMARY.md").is_file()


def test_bench_summary_only_without_results_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "DATA_DIR", tmp_path)
    assert main(["bench", "--summary-only", "--quick"]) == 2
    assert "no results" in capsys.readouterr().err


def test_bench_quick_shrinks_only_the_sizes_left_at_their_default():
    args = build_parser().parse_args(["bench", "--quick", "--fills", "5"])
    _apply_quick(args)
    assert args.fills == 5
    assert args.messages == 100_000 and args.stops == 100_000 and args.margin_accounts == 20_000


def test_summary_edge_shows_both_goal_configurations_with_their_own_goals(tmp_path):
    both = _result(
        "edge", "p99 ms XADD->client, 1000 clients x 10000/s", 40, 50.0,
        {"bare picows broadcast p99 ms": 30, "p99_ms_5000x1000": 160, "p50_ms_5000x1000": 60,
         "goal_p99_ms_5000x1000": 150.0, "bare_p99_ms_5000x1000": 80,
         "delivered_per_s_5000x1000": 180_000},
    )  # fmt: skip
    rows = _rows(tmp_path, both)
    assert rows["edge"]["met"] is True
    second = rows["edge 5,000 clients"]
    assert (second["figure"], second["goal"], second["yardstick"]) == (160, 150.0, 80)
    assert second["met"] is False and second["better"] == "lower"
    assert "p50 60 ms" in second["details"]
    # An older result without the second configuration has no such row.
    assert "edge 5,000 clients" not in _rows(tmp_path / "old", *SAMPLES)


def test_summary_counts_engine_only_figures_apart_and_says_so(tmp_path):
    stops = _result("stops", "quotes/s", 145_674, 100_000,
                    {"flow_quotes_per_s": 25_339, "flow_no_stops_quotes_per_s": 68_962})
    doc = summary.build_summary(
        summary.load_results(_write(tmp_path, *SAMPLES, MARGIN, stops), BENCHMARKS)
    )
    rows = {row["benchmark"]: row for row in doc["rows"]}
    engine = {name for name, row in rows.items() if row["engine_only"]}
    assert engine == {"stops, engine only", "margin, engine only", "margin call p99, engine only"}
    assert all("engine only" in name for name in engine)
    assert rows["stops, engine only"]["met"] is True  # 145,674 >= 100,000, the engine alone
    assert rows["margin, engine only"]["met"] is True
    assert rows["margin full flow"]["met"] is False and not rows["margin full flow"]["engine_only"]
    # Goals met: the product as users run it (ingest no, surveillance yes, edge no, stops end to
    # end no, margin full flow no); the engine-only figures apart.
    assert (doc["goals_met"], doc["goals"]) == (1, 5)
    assert (doc["engine_only_goals_met"], doc["engine_only_goals"]) == (2, 3)
    text = summary.render_text(doc)
    assert "goals met: 1 of 5" in text and "engine-only figures, not counted: 2 of 3" in text
    assert "| `margin, engine only` |" in summary.render_markdown(doc)
    # Every engine-only row the summary knows says so in its title.
    specs = [spec for group in summary.SPECS.values() for spec in group if spec.engine_only]
    assert specs and all("engine only" in spec.title for spec in specs)


def test_summary_latency_goal_is_judged_on_all_calls_not_a_subset(tmp_path):
    # p99 over all calls 1,219 ms misses the 1 s goal; after the first second 959 ms would meet
    # it, but that is a subset of the calls: a detail, not the row's figure.
    row = _rows(tmp_path, MARGIN)["margin call p99, engine only"]
    assert (row["figure"], row["goal"], row["better"]) == (1_218.8, 1_000.0, "lower")
    assert row["met"] is False
    assert any("after the first event-time second 959 ms" in d and "subset" in d
               for d in row["details"])  # fmt: skip
    doc = summary.build_summary(summary.load_results(tmp_path, BENCHMARKS))
    assert (doc["engine_only_goals_met"], doc["engine_only_goals"]) == (1, 2)
    # The same result with every call under a second meets it.
    fast = {**MARGIN, "yardsticks": {**MARGIN["yardsticks"],
                                     "engine_margin_call_latency_p99_ms": 795.0}}  # fmt: skip
    assert _rows(tmp_path / "fast", fast)["margin call p99, engine only"]["met"] is True


def test_summary_ratios_are_like_for_like(tmp_path):
    executions = _result(
        "executions", "fills/s", 11_563, 10_000,
        {"bare_copy_rows_per_s": 134_940, "execution_rows": 390_517, "seconds": 17.297,
         "messages_per_s": 22_577},
    )  # fmt: skip
    rows = _rows(tmp_path, *SAMPLES, MARGIN, executions)
    # quotes/s over accounts/s is no ratio: the yardstick is shown with its unit, no ratio.
    engine = rows["margin, engine only"]
    assert engine["yardstick"] == 50_539 and engine["yardstick_unit"] == "accounts/s"
    assert engine["ratio"] is None
    # fills/s over rows/s neither: the ratio is execution rows/s end to end over COPY rows/s.
    ex = rows["executions"]
    assert ex["figure"] == 11_563 and ex["unit"] == "fills/s"
    assert ex["ratio"] == pytest.approx(390_517 / 17.297 / 134_940, abs=1e-3)
    # msg/s against msg/s, reports/s against reports/s.
    assert rows["margin full flow"]["ratio"] == pytest.approx(0.5)
    assert rows["margin full flow"]["yardstick_unit"] == "messages/s"
    assert rows["surveillance"]["ratio"] == pytest.approx(22_947 / 50_020, abs=1e-3)
    doc = summary.build_summary(summary.load_results(tmp_path, BENCHMARKS))
    md = summary.render_markdown(doc)
    assert "full recompute, margin_figures: 50,539 accounts/s | - |" in md
    assert "bare COPY of the same rows: 134,940 rows/s | 0.167 |" in md


def test_summary_surveillance_counts_reports_not_order_messages(tmp_path):
    # A result from before the count was fixed (35=D/F/G counted as "order events") has no
    # figure of reports through the models: no figure, no goal met.
    old = _result("surveillance", "order events/s", 22_926, 20_000,
                  {"models_off_order_events_per_s": 50_939})
    row = _rows(tmp_path, old)["surveillance"]
    assert row["figure"] is None and row["met"] is None and row["unit"] == "reports/s"


def test_summary_shows_each_rows_commit(tmp_path):
    clean = {**SAMPLES[1], "commit": "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d"}
    doc = summary.build_summary(
        summary.load_results(_write(tmp_path, clean, MARGIN, SAMPLES[0]), BENCHMARKS)
    )
    commits = {row["benchmark"]: row["commit"] for row in doc["rows"]}
    assert commits["ingest"] == clean["commit"]
    assert commits["margin full flow"] == MARGIN["commit"]
    assert commits["edge"] is None  # a result from before commits were recorded
    md = summary.render_markdown(doc)
    ingest = next(line for line in md.splitlines() if line.startswith("| `ingest`"))
    assert ingest.endswith("| 1a2b3c4d5e |")
    margin = next(line for line in md.splitlines() if line.startswith("| `margin full flow`"))
    assert margin.endswith("| 0eee0d5844-dirty |")
    edge = next(line for line in md.splitlines() if line.startswith("| `edge`"))
    assert edge.endswith("| ? |")
    assert doc["commits"] == sorted([clean["commit"], MARGIN["commit"]])
    text = summary.render_text(doc)
    assert next(line for line in text.splitlines() if line.startswith("ingest")).endswith(
        "1a2b3c4d5e"
    )
