"""bench_flows counts what a flow costs the PostgreSQL server, and the flows/s the machine's cores allow.

A flows/s goal is only reachable if the machine has the CPU for it: the
benchmark reports the server's CPU per flow next to the client's, and the
ceiling that both together put on any number of clients. These tests run a
real cluster (the session's) and check that the server's CPU is found where
it is spent: in a backend serving a connection, and in a backend that has
already exited.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.bench_flows import _proc_times, cpu_ceiling, measure_cpu, postmaster_pid, server_cpu_s
from tests._pgcluster import PgCluster

#: A query that keeps one backend busy for a few hundred ms of CPU.
BUSY = "SELECT count(*) FROM generate_series(1, 3000000) AS g(i) WHERE i > 7"


@pytest.fixture()
def engine(pg_cluster: PgCluster) -> Iterator[sa.engine.Engine]:
    eng = sa.create_engine(pg_cluster.new_database())
    yield eng
    eng.dispose()


def test_the_postmaster_is_the_one_the_data_directory_names(engine: sa.engine.Engine) -> None:
    with engine.connect() as conn:
        data = Path(conn.exec_driver_sql("SHOW data_directory").scalar_one())
    assert postmaster_pid(engine) == int((data / "postmaster.pid").read_text().splitlines()[0])


def test_a_busy_backend_counts_as_server_cpu(engine: sa.engine.Engine) -> None:
    server = postmaster_pid(engine)
    assert server is not None
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        before = server_cpu_s(server)
        conn.exec_driver_sql(BUSY).scalar_one()
        assert server_cpu_s(server) - before >= 0.05


def test_a_backend_that_exited_still_counts(engine: sa.engine.Engine) -> None:
    server = postmaster_pid(engine)
    assert server is not None
    before = server_cpu_s(server)
    with engine.connect() as conn:
        conn.exec_driver_sql(BUSY).scalar_one()
    engine.dispose()  # The pooled connection closes and its backend exits.
    deadline = time.monotonic() + 10
    while server_cpu_s(server) - before < 0.05 and time.monotonic() < deadline:
        time.sleep(0.05)  # The postmaster reaps the backend soon after it exits.
    assert server_cpu_s(server) - before >= 0.05


def test_a_postgresql_flow_reports_the_servers_cpu_and_a_sqlite_flow_none(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    pg = measure_cpu(pg_cluster.new_database(), tmp_path / "pg-keys", 3)
    assert pg["server_cpu_ms"] > 0
    lite = measure_cpu(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "lite-keys", 2)
    assert "server_cpu_ms" not in lite


def test_the_ceiling_is_the_cores_cpu_over_one_flows() -> None:
    assert cpu_ceiling(2, 20.0) == pytest.approx(100.0)
    assert cpu_ceiling(8, 10.0) == pytest.approx(800.0)


def test_a_server_whose_backend_is_not_its_child_here_is_not_measured(
    engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a server on another machine looks like from here: the backend's pid is some local process
    # (here, pid 1's child or nothing), not a child of the pid in the data directory's postmaster.pid.
    import bench.bench_flows as flows

    monkeypatch.setattr(flows, "_proc_times", lambda pid: (1, 0, 0))
    assert flows.postmaster_pid(engine) is None
    monkeypatch.setattr(flows, "_proc_times", lambda pid: None)
    assert flows.postmaster_pid(engine) is None


def test_a_process_name_with_parentheses_spaces_and_bad_bytes_is_read() -> None:
    # Any process on the machine may be scanned: its name (which it sets itself) must not break the count.
    child = subprocess.Popen([sys.executable, "-c", (
        "import ctypes, sys, time\n"
        "ctypes.CDLL(None).prctl(15, b'pg) S 1 (\\xff\\xfe', 0, 0, 0)\n"  # PR_SET_NAME
        "print('ok', flush=True)\n"
        "time.sleep(30)\n")], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ok\n"
        times = _proc_times(child.pid)
        assert times is not None and times[0] == os.getpid()
    finally:
        child.kill()
        child.wait()


def test_a_user_who_may_not_see_the_data_directory_is_not_measured(pg_cluster: PgCluster) -> None:
    import psycopg

    role = f"plain_{os.getpid()}"
    url = pg_cluster.new_database()
    with psycopg.connect(pg_cluster.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    eng = sa.create_engine(sa.engine.make_url(url).set(username=role))
    try:
        assert postmaster_pid(eng) is None
    finally:
        eng.dispose()
        with psycopg.connect(pg_cluster.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{role}"')
