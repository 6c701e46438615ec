"""Bridges to other training stacks: a registered chord-env env as a verifiers environment
(`chord_env.bridges.verifiers_env.load_environment`) and as TRL GRPOTrainer inputs
(`chord_env.bridges.trl_grpo`). They import envs and nothing imports them (docs/design.md,
"Dependency direction"); TRL and verifiers are imported only inside them (the `bridges` extra)."""
