"""Integrations with external training frameworks (imported lazily; optional extras).

- :mod:`qfl_gym.integrations.rllib`: Ray RLlib env creators and a PPO config helper
  (the ``rllib`` extra).
"""
