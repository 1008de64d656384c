"""pytest configuration: the package under test is the installed `strata`.

A test skips (with its reason) when an optional dependency is missing; where everything
is expected to be present (CI sets ``STRATA_REQUIRE_DATA=1``), a skip fails the run."""

import os
import uuid

import pytest


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


@pytest.fixture(params=["folder", "s3"])
def bucket(request, tmp_path):
    """(url, remote_options) of an empty bucket prefix: a local folder, and S3 (moto's
    server named by ``STRATA_TEST_S3``; skipped without it, which fails a CI run)."""
    if request.param == "folder":
        folder = tmp_path / "bucket"
        folder.mkdir()
        return f"file://{folder}", None
    endpoint = os.environ.get("STRATA_TEST_S3")
    if not endpoint:
        pytest.skip("STRATA_TEST_S3 is not set (test.sh starts moto's S3 server on loopback)")
    options = {"aws_endpoint": endpoint, "aws_allow_http": "true", "aws_region": "us-east-1",
               "aws_access_key_id": "test", "aws_secret_access_key": "test"}
    return f"s3://strata-test/py-{uuid.uuid4().hex}", options
