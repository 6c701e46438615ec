"""Bridges to other training stacks: a registered chord-env env as what TRL's GRPOTrainer takes
(`chord_env.bridges.trl_grpo`) and as a verifiers environment (`chord_env.bridges.verifiers_env`).
Bridges import envs and nothing imports them (docs/design.md, "Dependency direction"); the library a
bridge serves is imported only inside it (the `bridges` extra)."""
