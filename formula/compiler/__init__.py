"""Checked tree -> plan -> torch: node builders, the runtime context, the Objective module."""
