"""Low-level vectorized kernels: keyed stable hashing, SHA-1, Community ID, IP address parsing."""
