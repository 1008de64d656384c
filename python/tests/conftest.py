"""pytest configuration: the package under test is the installed `strata`.

A test skips (with its reason) when an optional dependency is missing; where everything
is expected to be present (CI sets ``STRATA_REQUIRE_DATA=1``), a skip fails the run."""

import os


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("STRATA_REQUIRE_DATA") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reporter.ensure_newline()
        for report in skipped:
            reporter.write_line(f"SKIPPED where nothing may skip: {report.nodeid}: {report.longrepr}", red=True)
        session.exitstatus = 1
