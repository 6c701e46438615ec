"""Bridges to other training stacks: a registered chord-env env as what TRL's GRPOTrainer takes
(`chord_env.bridges.trl_grpo`). Bridges import envs and nothing imports them (docs/design.md,
"Dependency direction"); the library they serve is imported only by its user (the `bridges` extra)."""
