"""What a command prints besides its results: no matplotlib font fallbacks, a repeated warning
once, MLflow's INFO lines only with -v, and MLflow's artifacts beside the store they belong to.

Matplotlib and MLflow set themselves up once per process (a font list, logging handlers on
import), so those checks run in a fresh Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from training.cli.main import main
from training.tests.tuning_helpers import write_layer1_splits

REQUIRED = os.environ.get("MAXIMUS_TEST_MLFLOW_REQUIRED") == "1"


def _python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


FIGURES = """
    import sys
    import optuna
    from matplotlib import font_manager
    from matplotlib.figure import Figure
    from training.evaluation.figures import png
    from training.tuning.outputs import draw_plots

    # A font list cached by an installation without matplotlib's own fonts (the cache is per
    # user and matplotlib version): the mathtext fonts (STIX, Computer Modern) are missing.
    manager = font_manager.fontManager
    manager.ttflist = [f for f in manager.ttflist if "mpl-data" not in f.fname]

    def log_axes():
        fig = Figure()
        ax = fig.add_subplot()
        ax.set_yscale("log")  # tick labels "10^-3" are mathtext
        ax.plot([1, 2, 3], [1e-3, 1e-1, 10.0])
        return fig

    assert png(log_axes(), "report").startswith(b"\\x89PNG")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
                   + t.suggest_float("dropout", 0.1, 0.5), n_trials=4)
    drawn = draw_plots(study, {"parallel_coordinate": f"{sys.argv[1]}/p.png"})
    assert set(drawn.files) == {"parallel_coordinate"}, drawn.skipped
    # the same lookup outside our drawing (a size not looked up yet: lookups are cached) warns
    print("--- outside", file=sys.stderr)
    font_manager.findfont(font_manager.FontProperties(family="cmsy10", size=7.3))
"""


def test_report_figures_and_tuning_plots_draw_without_font_warnings(tmp_path):
    ours, outside = _python(FIGURES, tmp_path, str(tmp_path)).stderr.split("--- outside\n")
    assert ours == ""
    assert (tmp_path / "p.png").stat().st_size > 0
    assert outside.startswith("findfont: Font family ['cmsy10'] not found.")


def test_a_warning_repeated_in_every_tuning_trial_is_shown_once(tmp_path, capsys):
    # seed-format splits: bare vectors, no FeatureSpec; each trial fits the layer again
    train, val = write_layer1_splits(tmp_path, n_train=32)
    assert main(["tune", "--train_data", train, "--val_data", val, "--n_trials", "2",
                 "--max_epochs", "1", "--output_dir", str(tmp_path / "tuning")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: the training vectors carry no FeatureSpec") == 1, err


MLFLOW = """
    import sys
    from pathlib import Path
    from training.cli.output import command_output
    from training.tracking.window import open_window

    Path("f.txt").write_text("x")
    with command_output():
        window = open_window(sys.argv[1])  # a new store: MLflow creates its tables
        run = window.start_run("r", {})
        window.log_files(run, [Path("f.txt")], "a")
        window.end_run(run)
"""


def test_mlflow_info_lines_wait_for_v_and_artifacts_sit_beside_their_store(tmp_path):
    try:
        import mlflow  # noqa: F401
    except ImportError:
        if REQUIRED:
            raise
        pytest.skip("mlflow is not installed (pip install -e '.[mlflow]')")
    store, elsewhere = tmp_path / "store", tmp_path / "cwd"
    store.mkdir(), elsewhere.mkdir()
    assert _python(MLFLOW, elsewhere, f"sqlite:///{store / 'a.db'}").stderr == ""
    # named after the store (another store in that folder keeps its own), wherever it ran from
    (artifact,) = (store / "a.db-artifacts").glob("*/artifacts/a/f.txt")
    assert artifact.read_text() == "x"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["f.txt"]
    assert sorted(p.name for p in store.iterdir()) == ["a.db", "a.db-artifacts"]


def test_the_elasticsearch_clients_own_warnings_wait_for_v(capsys):
    from elasticsearch import ConnectionError as ClusterDown
    from elasticsearch import Elasticsearch

    from training.cli.output import command_output

    shown = {}
    for verbose in (False, True):
        with command_output(verbose=verbose):
            client = Elasticsearch("http://127.0.0.1:9", max_retries=1)  # nothing listens
            with pytest.raises(ClusterDown):
                client.info()
            client.close()
        shown[verbose] = capsys.readouterr().err
    assert shown[False] == ""
    assert "warning: Node <Urllib3HttpNode(http://127.0.0.1:9)> has failed for 1 times in a " \
           "row" in shown[True]
