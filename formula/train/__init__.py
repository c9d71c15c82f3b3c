"""Training: the Trainer, update rules, checkpoints and torchrun/DDP."""
