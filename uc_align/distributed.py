"""Data parallel training under ``accelerate launch --num_processes N -m uc_align.<command> ...``.

``process_state``: accelerate's process state for every command. Without CUDA it must be asked for CPU
processes explicitly (``PartialState(cpu=True)``), or each launched process trains alone: ``--multi_gpu`` with
``ACCELERATE_USE_CPU=1`` sets the environment, but a state made without ``cpu`` reads it as one process.

PPO (``Group``):
Every process holds the whole model (same seed, so the same fresh adapters) and takes every N-th item of each
rollout batch (``shard``): it samples, scores and backpropagates its share. Gradients are averaged over the
processes before the clip and the optimizer step (``average_gradients``), so the weights stay identical
everywhere. Advantages are whitened over the tokens of the whole batch (``total``: a sum over processes), and
the logged metrics are computed from every process's answers (``gather``). What stays per process: sampling
noise (each process draws with its own seed), the minibatch losses (token means of its share, then averaged),
and ``reward classifier``'s min-max normalisation (over its share). The held-out evaluation, the log, the
checkpoints and the run file are the main process's; the others wait for it.

With one process (plain ``python -m``) every function here is the identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


def process_state() -> Any:
    """accelerate's ``PartialState`` (made once per process): gloo over CPU processes when CUDA is absent, one
    process per GPU (and its device picked) under accelerate launch otherwise."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


class Group:
    """This process's place among the data parallel processes of a PPO run."""

    def __init__(self) -> None:
        state = process_state()
        self.rank, self.world, self.main = state.process_index, state.num_processes, state.is_main_process

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's share of a batch: every ``world``-th item from its rank."""
        return list(items[self.rank::self.world])

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        if not self.parallel:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)
            p.grad /= self.world

    def total(self, x: Tensor) -> Tensor:
        """``x`` summed over the processes (for the batch's whitening)."""
        if self.parallel:
            x = x.clone()
            torch.distributed.all_reduce(x)
        return x

    def gather(self, values: list[Any]) -> list[Any]:
        """Every process's ``values``, concatenated in rank order."""
        if not self.parallel:
            return values
        parts: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(parts, values)
        return [v for part in parts for v in part]

    def barrier(self) -> None:
        if self.parallel:
            torch.distributed.barrier()
