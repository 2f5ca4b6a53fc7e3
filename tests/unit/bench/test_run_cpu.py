"""`bench run-cpu`'s accounting: the `run` process tree only, and each figure beside its
baseline."""

from __future__ import annotations

from bench.run_cpu import BASELINE, report_lines, tree_ticks


def test_the_run_tree_counts_descendants_and_reaped_children_but_not_the_simulator():
    # pid: (ppid, utime + stime, cutime + cstime)
    stats = {
        1: (0, 1_000, 0),  # init
        100: (1, 50, 20),  # brokerflow run; 20 ticks left by a reaped child (a writer)
        101: (100, 7, 0),  # its data-quality child
        102: (101, 3, 0),  # a grandchild
        200: (1, 400, 0),  # the simulator: a sibling, not counted
    }
    assert tree_ticks(100, stats) == 50 + 20 + 7 + 3
    assert tree_ticks(999, stats) == 0  # gone


def test_each_figure_is_printed_beside_the_baseline():
    figures = {
        "rate_cpu_pct": 12.5, "rate_msgs_per_s": 490.0, "idle_cpu_pct": 0.75,
        "idle_msgs_per_s": 0.0, "rate_postgres_cpu_pct": 1.0, "idle_postgres_cpu_pct": 0.0,
    }  # fmt: skip
    lines = report_lines(figures, BASELINE, 20)
    assert str(BASELINE["commit"])[:10] in lines[0]
    rate = next(line for line in lines if "demo's rate" in line)
    idle = next(line for line in lines if "idle" in line and "postgres" not in line)
    assert "12.5 %" in rate and f"{BASELINE['rate_cpu_pct']:.1f} %" in rate
    assert "0.8 %" in idle and f"{BASELINE['idle_cpu_pct']:.1f} %" in idle
    assert any("postgres server (not counted)" in line for line in lines)
