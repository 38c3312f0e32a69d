"""Every payload the optimizer reads or writes, in one module tree.

Models are grouped by the service that owns the payload; the request record, which every
extractor produces and every analysis reads, lives in `records`. The optimizer's own domain
types sit here too, below everything that uses them: `analysis` (results), `applications`
(usage profiles), `loads` (a warehouse load) and `events` (what is announced).

Each is imported from the module that owns it; the package itself imports none, so a
command that needs one payload does not load them all (nor pyarrow, which only `arrow` uses).
"""
