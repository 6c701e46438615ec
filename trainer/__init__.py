"""CHORD training: GRPO blended with phi-weighted SFT on expert traces (see the trainer issue)."""
