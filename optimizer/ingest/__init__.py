"""Getting request records in: telemetry mapping (`mapping`), OTLP/JSON files (`otlp`),
Parquet staging (`staging`), and the files a command names (`files`).

Each is imported from its module; the package imports none, so naming a Parquet input does
not load the OTLP reader and pyarrow.
"""
