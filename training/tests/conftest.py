"""Shared fixtures: the real datasets folder and a one-call collector; the hypothesis profile
the environment asks for (see hypothesis_profiles.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from training.collection.collector import DataCollector, DataSource
from training.tests.hypothesis_profiles import load_profile

load_profile()

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets() -> Path:
    """../shared/datasets, or a skip when this machine does not have it."""
    if not DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {DATASETS} (see ../shared/datasets/README.md)")
    return DATASETS


@pytest.fixture(scope="session")
def benign_008_run(datasets, tmp_path_factory) -> Path:
    """A pipeline workdir: layer 1 trained for 3 epochs on the benign flows of Stratosphere
    008's conn log (`pipeline --benign-only`), shared by the modules that score other captures
    with it; they write their outputs beside it, each its own, and never change the workdir."""
    from training.cli.main import main

    work = tmp_path_factory.mktemp("benign_008") / "w8"
    conn = datasets / "stratosphere/008-zeek-mixed/data/conn.log.labeled"
    assert main(["pipeline", "--source", f"zeek:{conn}", "--benign-only", "--layers", "layer1",
                 "--epochs", "3", "--workdir", str(work), "-q"]) == 0
    return work


def collect(source_type: str, path: str | Path, **kwargs) -> tuple[pa.Table, DataCollector]:
    """Collect one source in memory; keyword arguments go to DataSource, or to DataCollector
    when named deduplicate/output_dir."""
    collector_args = {k: kwargs.pop(k) for k in ("deduplicate", "output_dir") if k in kwargs}
    params = {"path": str(path), **kwargs.pop("connection_params", {})}
    collector = DataCollector([DataSource("test", source_type, params, **kwargs)],
                              progress=False, **collector_args)
    return collector.collect_table(), collector


@pytest.fixture
def umask_022():
    """A umask that lets group and others read (the common default): what is written must
    still be private."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
