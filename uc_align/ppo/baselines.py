"""What the critic-free baselines (``uc_align.grpo``, ``uc_align.rloo``) share: TRL's GRPOTrainer / RLOOTrainer
rewarded by the same ``VerdictReward`` object as PPO, on the data, LoRA, checkpoint folder and log of the SFT and
DPO commands (``uc_align.train``).

Each prompt gets ``num_generations`` sampled answers; the advantage is each answer's reward against its group's
(GRPO: the group mean, scaled by the group's standard deviation; RLOO: the mean of the others). No value model,
no reward shaping (the paper's no-EOS penalty and length bonus belong to its PPO): the reward is the verdict
alone, +1 right, -1 wrong, ``na_reward`` unreadable. With +-1 rewards a group whose answers all score the same
has zero advantage and teaches nothing, which a learned value baseline avoids (ENVIRONMENT.md).

The optimisation schedule is PPO's when asked: ``num_iterations`` passes over each generated batch of
``batch_size`` answers, ``num_minibatches`` optimizer steps per pass (TRL's ``steps_per_generation``). On the
learning testbed, 4 x 2 at lr 1e-3 (PPO's test) made both learn at each of the seeds tried (0-4: 100% greedy, at
least 91% sampled); TRL's default of one optimizer step per batch (lr 5e-3) learnt at some seeds and stayed at
chance at others (``tests/test_ppo_learning.py``).

GRPO takes three more of TRL's options (``GRPO_ONLY``: ``scale_rewards``, ``loss_type``,
``mask_truncated_completions``; unset, TRL's defaults: group, dapo, off); RLOOConfig has none of them, so
``uc_align.rloo`` refuses them rather than drop them. The KL differs too: GRPO adds ``beta`` x the per-token KL
to the loss, a pull towards the base on every answer, while RLOO subtracts it from the reward, where a group of
equal answers cancels it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from uc_align.config import TrainConfig
from uc_align.ppo.config import REWARDS
from uc_align.ppo.reward import VerdictReward
from uc_tasks.config import help_field

COLUMNS = ["images", "prompt", "target", "concept"]
SCALE_REWARDS = ("group", "batch", "none")
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo", "vespo")  # TRL 1.16's, less luspo (sequence-level)
GRPO_ONLY = ("scale_rewards", "loss_type", "mask_truncated_completions")
"""Fields passed to TRL's GRPOConfig only (RLOOConfig has no such argument); None: TRL's default."""


@dataclass
class CriticFreeConfig(TrainConfig):
    """TrainConfig plus the reward and the sampling of the group baselines."""

    reward: str = help_field("rule", "answer reader behind the reward, as for PPO: rule, classifier or judge")
    na_reward: float = help_field(-1.0, "reward of an answer the reader cannot read (rule and judge)")
    num_generations: int = help_field(8, "answers sampled per prompt (the group); batch_size must be a multiple")
    beta: float = help_field(0.1, "KL coefficient against the base (adapters disabled); 0.1 as PPO's kl_coef")
    epsilon: float = help_field(0.2, "ratio clip, as PPO's cliprange")
    num_iterations: int = help_field(1, "optimisation passes per generated batch (PPO's ppo_epochs)")
    num_minibatches: int = help_field(1, "optimizer steps per pass: each generated batch of batch_size answers is "
                                      "split into this many (PPO's num_minibatches). max_steps and save_steps "
                                      "count optimizer steps, num_iterations x num_minibatches per batch")
    max_completion_length: int = help_field(512, "answer length limit in tokens (paper: 512)")
    temperature: float = help_field(1.0, "sampling temperature (paper: 1.0)")
    top_p: float = help_field(1.0, "nucleus sampling (paper's PPO: 1.0, off)")
    top_k: int = help_field(0, "top-k sampling (0: off, paper's PPO)")
    scale_rewards: str | None = help_field(None, "GRPO only: divide the advantages by the reward std of the group, "
                                           "of the batch, or not at all (Dr. GRPO): "
                                           f"{', '.join(SCALE_REWARDS)} (default: TRL's, group)")
    loss_type: str | None = help_field(None, "GRPO only: how token losses are averaged: "
                                       f"{', '.join(LOSS_TYPES)} (default: TRL's, dapo: over all answer tokens "
                                       "of the batch)")
    mask_truncated_completions: bool | None = help_field(None, "GRPO only: leave answers cut at "
                                                         "max_completion_length out of the loss (default: TRL's, "
                                                         "false)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward not in REWARDS:
            raise ValueError(f"reward={self.reward!r}: must be one of {', '.join(REWARDS)}; pick one of those")
        if self.num_generations < 2:
            raise ValueError(f"num_generations={self.num_generations}: a group baseline needs at least 2 answers "
                             "per prompt; pass --num_generations 4 or more")
        if self.batch_size % self.num_generations:
            raise ValueError(f"batch_size={self.batch_size} is not a multiple of num_generations="
                             f"{self.num_generations}: each step samples whole groups; choose values that divide")
        if self.num_minibatches < 1 or self.batch_size % (self.num_minibatches * self.gradient_accumulation_steps):
            raise ValueError(f"num_minibatches={self.num_minibatches}: batch_size={self.batch_size} must split into "
                             f"num_minibatches x gradient_accumulation_steps={self.gradient_accumulation_steps} "
                             "equal parts; choose values that divide")
        if self.scale_rewards is not None and self.scale_rewards not in SCALE_REWARDS:
            raise ValueError(f"scale_rewards={self.scale_rewards!r}: must be one of {', '.join(SCALE_REWARDS)}; "
                             "pass e.g. --scale_rewards none (no std scaling, Dr. GRPO)")
        if self.loss_type is not None and self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type={self.loss_type!r}: must be one of {', '.join(LOSS_TYPES)}; pass e.g. "
                             "--loss_type dapo (TRL's default)")
        if self.max_length is not None:
            raise ValueError(f"max_length={self.max_length}: the RL commands cut answers with "
                             "max_completion_length and never truncate prompts; leave max_length unset")


def check_command(command: str, cfg: CriticFreeConfig) -> None:
    """Refuse, in one line, a GRPO-only option set on another command (TRL's RLOOConfig has no such field)."""
    if command == "grpo":
        return
    given = [f"{name}={getattr(cfg, name)!r}" for name in GRPO_ONLY if getattr(cfg, name) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: GRPO-only option(s), which TRL's {command.upper()} has no use for; "
                         f"drop them, or run python -m uc_align.grpo")


def trl_config(cfg: CriticFreeConfig, args: dict[str, Any], config_class: Any) -> Any:
    """TRL's GRPOConfig / RLOOConfig from the shared arguments and ours (the GRPO-only ones where set).

    TRL generates ``per_device_train_batch_size x steps_per_generation`` answers per process at a time and takes
    one micro-batch per forward: batch_size answers per generated batch, num_minibatches optimizer steps of
    gradient_accumulation_steps micro-batches each."""
    args = {k: v for k, v in args.items() if k != "max_length"}
    if args["per_device_train_batch_size"] % cfg.num_minibatches:
        from uc_align.train import TrainError

        raise TrainError(f"num_minibatches={cfg.num_minibatches}: the {args['per_device_train_batch_size']} answers "
                         "per process and step do not split into that many; choose values that divide")
    args["per_device_train_batch_size"] //= cfg.num_minibatches
    grpo = {name: getattr(cfg, name) for name in GRPO_ONLY if getattr(cfg, name) is not None}
    return config_class(**args, **grpo, num_generations=cfg.num_generations, beta=cfg.beta, epsilon=cfg.epsilon,
                        num_iterations=cfg.num_iterations,
                        steps_per_generation=cfg.num_minibatches * cfg.gradient_accumulation_steps,
                        max_completion_length=cfg.max_completion_length,
                        temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k)


def build_trainer(trainer_class: Any, config_class: Any, cfg: CriticFreeConfig, model: Any, processor: Any,
                  dataset: Any, peft_config: Any, args: dict[str, Any]) -> Any:
    reward = VerdictReward(cfg.reward, cfg.na_reward)
    return trainer_class(model=model, reward_funcs=[reward], args=trl_config(cfg, args, config_class),
                         train_dataset=dataset.select_columns(COLUMNS), processing_class=processor,
                         peft_config=peft_config)


def run(command: str, trl_name: str, argv: list[str] | None, description: str) -> int:
    """``main`` of ``uc_align.<command>``: TRL's ``<trl_name>Trainer`` / ``<trl_name>Config`` (GRPO, RLOO)."""
    import sys

    from uc_align.train import run_command
    from uc_tasks.config import parse_config

    def make_trainer(cfg: CriticFreeConfig, model: Any, processor: Any, dataset: Any, peft_config: Any,
                     args: dict[str, Any]) -> Any:
        import trl

        return build_trainer(getattr(trl, f"{trl_name}Trainer"), getattr(trl, f"{trl_name}Config"), cfg, model,
                             processor, dataset, peft_config, args)

    cfg = parse_config(CriticFreeConfig, list(sys.argv[1:] if argv is None else argv), description)
    try:
        check_command(command, cfg)
    except ValueError as e:
        print(f"uc_align.{command}: {e}", file=sys.stderr)
        return 2
    return run_command(command, cfg, make_trainer)
