"""Multi-agent views of the qfl_gym environments (PettingZoo; the ``multiagent`` extra).

:class:`~qfl_gym.multiagent.parallel_env.DeviceParallelEnv`: every device is an agent
choosing its own sub-channel and power level from local observations.
"""

from qfl_gym.multiagent.parallel_env import DeviceParallelEnv, agent_name

__all__ = ["DeviceParallelEnv", "agent_name"]
