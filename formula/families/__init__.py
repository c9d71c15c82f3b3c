"""Declarations: distributions and functions a formula names, built on torch.distributions."""
