"""Prefect tasks: thin wrappers over `optimizer` calls that add retries, logging and artifacts."""
