"""Rollouts: strategies plan steps (pure), one executor performs them."""
