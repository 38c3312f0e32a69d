"""The application layer: one plain function per use case, over an explicit `Runtime`.

Flows and tasks wrap these functions (a decorator and one call each); the CLI, the demo
and the benchmark call them too. Nothing here imports Prefect or reads the environment.
"""
