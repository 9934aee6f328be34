"""A tracking URI's password never reaches a message: not where mlflow is missing, nor in a
password that is no part of a URL as urllib reads it ('#' starts a fragment, '/' a path), whose
probe failed with "unexpected InvalidURL: nonnumeric port: 'pa'" (review)."""

from __future__ import annotations

import logging
import sys

from training.tracking.window import open_window, redacted


def test_mlflow_missing_names_the_uri_without_its_password(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    with caplog.at_level(logging.WARNING):
        assert open_window("https://alice:S3cret@mlflow.example:5000") is None
    assert "https://alice:***@mlflow.example:5000 given but mlflow is not installed" \
        in caplog.text
    assert "S3cret" not in caplog.text


def test_a_password_urllib_cannot_read_is_hidden_and_the_uri_refused_saying_why(caplog):
    uri = "http://alice:pa#ss/w@127.0.0.1:5000"
    assert redacted(f"at {uri}", uri) == "at http://alice:***@127.0.0.1:5000"
    with caplog.at_level(logging.WARNING):
        assert open_window(uri) is None
    assert "pa#ss" not in caplog.text and "alice:***@" in caplog.text
    assert "not a valid URL: percent-encode the user's and password's '#', '/'" in caplog.text
