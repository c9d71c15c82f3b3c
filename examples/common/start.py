"""What an example does first with its parsed options: seed torch, set its threads, make the output folder."""

from __future__ import annotations

import argparse


def start(args: argparse.Namespace) -> None:
    """`torch.manual_seed(args.seed)`, `torch.set_num_threads(args.threads)`, and `args.out` made."""
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
