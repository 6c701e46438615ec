"""Benchmarks behind `chord-env bench envs|rollout|trainer|eval`: each measures one part of the chain
against a baseline run in the same process and prints ratios (machines are noisy; docs/platform.md)."""
