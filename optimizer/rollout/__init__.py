"""Pure rollout logic: routing configurations from proposed changes, their diff, canaries,
and the guardrail verdict. No I/O: the rollout flow's tasks do the talking."""
