"""`run_pipeline` from Python with the workdir given as text (trial Q).

`PipelineConfig(sources=..., workdir="run")` is what a notebook user writes; the field was
kept as given, so `run_pipeline` failed at its first step with "unsupported operand type(s)
for /: 'str' and 'str'" (and left an empty folder). The config now holds it as a Path.
"""

from __future__ import annotations

from pathlib import Path

from training.data_collection import DataSource
from training.pipeline.config import PipelineConfig
from training.pipeline.run import run_pipeline


def test_text_workdir_runs(datasets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = DataSource("hp", "csv_file",
                        {"path": str(datasets / "iot23" / "CTU-Honeypot-Capture-4-1-labeled.csv")})
    config = PipelineConfig(sources=(source,), workdir="run", layers=("layer1",), seed=3)
    assert config.workdir == Path("run")
    result = run_pipeline(config.with_training(epochs=1))
    assert result.events == 452
    assert (tmp_path / "run" / "models" / "registry.db").is_file()
    assert Path(result.report).is_file()
