"""Policy backends, in-place weight sync, the batched multi-turn rollout runner and evaluation."""
