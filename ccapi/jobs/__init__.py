"""Persisted asynchronous image jobs and the runner that executes them."""
