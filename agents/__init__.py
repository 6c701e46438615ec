"""Policy backends and the batched multi-turn rollout runner (see the rollout issue)."""
