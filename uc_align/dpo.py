"""Direct preference optimisation (the paper's DPO baseline): ``python -m uc_align.dpo --model M --data DIR
--out CKPT``.

TRL's DPOTrainer on the pairs of ``uc_align.data`` (image + prompt; chosen = the correct-label sentence,
rejected = the opposite one), sigmoid loss on summed log-probabilities, a LoRA adapter on the language model;
the reference is the base model itself (the adapter disabled: no second copy). The paper's defaults
(``uc_align.config.DPOTrainConfig``). ``--config file.yaml`` takes any of the flags.
"""

from __future__ import annotations

import sys
from typing import Any

from uc_align.config import DPOTrainConfig
from uc_align.train import run_command
from uc_tasks.config import parse_config

COLUMNS = ["images", "prompt", "chosen", "rejected"]


def make_trainer(cfg: DPOTrainConfig, model: Any, processor: Any, dataset: Any, peft_config: Any,
                 args: dict[str, Any]) -> Any:
    from trl import DPOConfig, DPOTrainer

    losses = {"loss_type": [cfg.loss_type]}
    if cfg.sft_weight:  # RPO: the DPO loss plus an NLL term on the chosen answers
        losses = {"loss_type": [cfg.loss_type, "sft"], "loss_weights": [1.0, cfg.sft_weight]}
    return DPOTrainer(model=model, processing_class=processor, train_dataset=dataset.select_columns(COLUMNS),
                      peft_config=peft_config, args=DPOConfig(**args, beta=cfg.beta, **losses))


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(DPOTrainConfig, list(sys.argv[1:] if argv is None else argv), __doc__.split("\n\n")[0])
    return run_command("dpo", cfg, make_trainer)


if __name__ == "__main__":
    raise SystemExit(main())
