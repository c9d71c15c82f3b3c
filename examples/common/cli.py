"""The command-line options every example shares (--lr, --device, --out, --seed, --threads, --smoke), in one place."""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_common(parser: argparse.ArgumentParser, argv, out: str, smoke_epochs: int = 2) -> argparse.Namespace:
    """Add the shared options to `parser` (which has `--epochs`), parse `argv`; `--smoke` caps the epochs."""
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (a model this small runs fastest on one)")
    parser.add_argument("--smoke", action="store_true", help=f"a few seconds: {smoke_epochs} epochs, same outputs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = min(args.epochs, smoke_epochs)
    return args
