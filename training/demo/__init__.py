"""Deterministic synthetic security events: labeled attack scenarios on an enterprise background.

`generator` is the entry point (`generate_demo_events`); `network` is the simulated enterprise,
`background` and `host_activity` its normal traffic and logs, `scenarios` the attacks,
`records` the event records they are written as.
"""
