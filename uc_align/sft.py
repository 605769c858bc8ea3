"""Supervised fine-tuning (the paper's SFT baseline): ``python -m uc_align.sft --model M --data DIR --out CKPT``.

TRL's SFTTrainer on the prompt-completion examples of ``uc_align.data`` (image + prompt -> the fixed target
sentence), the loss on the answer tokens only, with a LoRA adapter on the language model; the paper's
defaults (``uc_align.config.SFTTrainConfig``). ``--config file.yaml`` takes any of the flags.
"""

from __future__ import annotations

import sys
from typing import Any

from uc_align.config import SFTTrainConfig
from uc_align.train import run_command
from uc_tasks.config import parse_config

COLUMNS = ["images", "prompt", "completion"]


def make_trainer(cfg: SFTTrainConfig, model: Any, processor: Any, dataset: Any, peft_config: Any,
                 args: dict[str, Any]) -> Any:
    from trl import SFTConfig, SFTTrainer

    return SFTTrainer(model=model, processing_class=processor, train_dataset=dataset.select_columns(COLUMNS),
                      peft_config=peft_config, args=SFTConfig(**args, completion_only_loss=True))


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(SFTTrainConfig, list(sys.argv[1:] if argv is None else argv), __doc__.split("\n\n")[0])
    return run_command("sft", cfg, make_trainer)


if __name__ == "__main__":
    raise SystemExit(main())
