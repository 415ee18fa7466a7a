"""Scaling: the policy (pure, `policy`) and the beat's evaluation and manual targets (`services`)."""
