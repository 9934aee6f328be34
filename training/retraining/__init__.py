"""Continuous training: triggers, the deployment gate, and the run that ties them (`continuous`)."""
