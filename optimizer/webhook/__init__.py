"""The webhook receiver: platform CloudEvents in, durable acceptance, flow runs out."""
