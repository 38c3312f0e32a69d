"""Prefect flows: the wiring of tasks, read top to bottom like the data flow."""
