"""Alignment training on UnsafeConcepts: SFT, DPO and self-rewarded PPO of vision-language models."""
