"""Command-line jobs: train RL agents, benchmark agents, reproduce the case study."""
