"""CHORD training: GRPO blended with token-weighted SFT on expert traces (docs/method.md)."""
