"""Collection: sources read into one canonical event table, deduplicated, resumable.

`collector` (`DataCollector`), `schema` (the canonical event schema, field and label maps),
`canonical` (raw batches onto that schema), `resume_state` (what survives a crash),
`event_files` (`CollectedEvent` and event files), `event_dicts` (event dicts as a table),
`schema_union` and `prefetch` (reading overlapped with processing).
"""
