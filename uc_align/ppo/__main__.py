"""``python -m uc_align.ppo``: self-rewarded PPO of a VLM (see ``uc_align.ppo``); ``--help`` lists every field."""

from __future__ import annotations

import json
import sys

from uc_align.ppo.config import PPOConfig
from uc_tasks.config import parse_config

DESCRIPTION = ("Self-rewarded PPO (UnsafeConcepts, USENIX Security 2025): the benchmark's reader scores the "
               "policy's own answers. Defaults are the paper's; see uc_align/ppo/__init__.py for the "
               "differences from the authors' code.")


def main(argv: list[str] | None = None) -> None:
    config = parse_config(PPOConfig, argv, DESCRIPTION)
    missing = [f"--{name}" for name in ("model", "train_file") if not getattr(config, name)]
    if missing:
        sys.exit(f"uc_align.ppo: give {' and '.join(missing)} (or --data DIR, see --help)")
    from uc_align.ppo.trainer import PPOTrainer

    try:
        trainer = PPOTrainer(config)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        sys.exit(f"uc_align.ppo: {e}")
    from uc_align.ppo.rollout import EngineError

    try:
        final = trainer.train()
    except EngineError as e:  # the engine's server is stopped; the last checkpoint stays for --resume
        sys.exit(f"uc_align.ppo: {e}")
    if trainer.group.main:
        print(json.dumps({k: v for k, v in final.items() if k.startswith(("step", "reward", "accuracy", "eval/"))}))


if __name__ == "__main__":
    main()
