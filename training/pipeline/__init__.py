"""The main job (`maximus-train pipeline`): its configuration and its run."""
