"""The model registry: versions, stages, aliases, artifacts and the transition log (`registry.ModelRegistry`)."""
