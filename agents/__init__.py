"""Decision-makers for qfl_gym environments behind one interface.

>>> import gymnasium as gym, qfl_gym, agents
>>> env = gym.make("qfl_gym/ChannelPower-v0")
>>> agent = agents.make("greedy", env, seed=0)
>>> obs, info = env.reset(seed=0)
>>> action = agent.act(obs, info)
"""

from agents.base import Agent, AssignmentAgent
from agents.registry import available, make, register

__all__ = ["Agent", "AssignmentAgent", "available", "make", "register"]
