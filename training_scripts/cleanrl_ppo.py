"""PPO on qfl_gym/ChannelPower-v0 in one file, in the style of CleanRL's ``ppo.py``.

An example to copy and modify: everything PPO does is in this file, with torch as the only
learning library. The environment is qfl-gym's native batched vector env
(``gym.make_vec(..., vectorization_mode="vector_entry_point")``: all ``num_envs``
sub-environments stepped as one numpy batch). The action is ``MultiDiscrete``: a
sub-channel for each of the K devices, then a power level for each, so the policy has one
categorical head per action entry; the log-probability of an action is the sum over heads.

The environment resets finished sub-environments in the same step
(``autoreset_mode="SameStep"``, the convention CleanRL's loop assumes); at a truncation,
the value of the final observation (``info["final_obs"]``) is bootstrapped into the
reward, so the time limit is not mistaken for the end of the task.

ChannelPower-v0's channel does not depend on the actions (a contextual bandit), so the
default ``gamma`` is 0, as in ``training_scripts/hyperparams/ppo.yml``; QFL-v0 (one step
is one federated round) works too with ``--env-id qfl_gym/QFL-v0 --gamma 0.9``.

Run::

    python training_scripts/cleanrl_ppo.py --total-timesteps 200000
    python training_scripts/cleanrl_ppo.py --scenario small --num-envs 16 --log-dir runs/ppo

Units: the reward is ChannelPower-v0's sum rate in Mbit/s per step (minus the scenario's
energy and outage penalties).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from torch.distributions.categorical import Categorical

import qfl_gym  # noqa: F401  (registers the env ids)


@dataclass
class Args:
    """Options (each is a ``--flag`` on the command line, ``_`` written ``-``)."""

    env_id: str = "qfl_gym/ChannelPower-v0"
    scenario: str = "default"  # preset of the env (see `qfl-gym envs`)
    seed: int = 1
    torch_threads: int = 1  # pinned, so runs repeat bit for bit on one machine
    total_timesteps: int = 200_000  # environment steps, all sub-envs together
    num_envs: int = 64
    num_steps: int = 16  # steps per sub-env per rollout
    learning_rate: float = 1e-3
    anneal_lr: bool = True
    gamma: float = 0.0  # the channel ignores the actions: a contextual bandit
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 2
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    hidden: int = 128  # width of the two hidden layers of actor and critic
    log_dir: str | None = None  # TensorBoard folder (None: no logs)
    verbose: bool = True

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        return max(1, self.total_timesteps // self.batch_size)


def parse_args(argv: list[str] | None = None) -> Args:
    """``Args`` from the command line (``--num-envs 16``, ``--no-anneal-lr``, ...)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        elif f.name in ("target_kl", "log_dir"):
            kind = float if f.name == "target_kl" else str
            parser.add_argument(flag, type=kind, default=f.default)
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args(argv)))


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights, constant bias (CleanRL's initialisation)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class Agent(nn.Module):
    """Actor-critic MLPs; the actor has one categorical head per ``MultiDiscrete`` entry."""

    def __init__(self, obs_dim: int, nvec: np.ndarray, hidden: int) -> None:
        super().__init__()
        self.nvec = [int(n) for n in nvec]
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, sum(self.nvec)), std=0.01),
        )

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled (or given) action, its log-probability, the entropy and the value."""
        heads = [Categorical(logits=part) for part in self.actor(x).split(self.nvec, dim=1)]
        if action is None:
            action = torch.stack([head.sample() for head in heads], dim=1)
        logprob = torch.stack([h.log_prob(a) for h, a in zip(heads, action.T, strict=True)])
        entropy = torch.stack([head.entropy() for head in heads])
        return action, logprob.sum(0), entropy.sum(0), self.critic(x)


def make_env(args: Args) -> gym.vector.VectorEnv:
    """The native batched vector env, resetting finished sub-envs in the same step."""
    return gym.make_vec(
        args.env_id,
        num_envs=args.num_envs,
        vectorization_mode="vector_entry_point",
        scenario=args.scenario,
        autoreset_mode="SameStep",
    )


def train(args: Args) -> dict[str, Any]:
    """Train; returns the mean step reward of the first and last rollouts and the agent."""
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    writer = None
    if args.log_dir:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(args.log_dir)
        writer.add_text("hyperparameters", str(dataclasses.asdict(args)))

    envs = make_env(args)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    assert isinstance(act_space, gym.spaces.MultiDiscrete), "needs a MultiDiscrete action"
    agent = Agent(int(np.prod(obs_space.shape)), act_space.nvec, args.hidden)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # rollout storage
    obs = torch.zeros((args.num_steps, args.num_envs, *obs_space.shape))
    actions = torch.zeros((args.num_steps, args.num_envs, *act_space.shape), dtype=torch.long)
    logprobs = torch.zeros((args.num_steps, args.num_envs))
    rewards = torch.zeros((args.num_steps, args.num_envs))
    dones = torch.zeros((args.num_steps, args.num_envs))
    values = torch.zeros((args.num_steps, args.num_envs))

    global_step = 0
    start = time.perf_counter()
    next_obs, _ = envs.reset(seed=args.seed)
    next_obs = torch.as_tensor(next_obs)
    next_done = torch.zeros(args.num_envs)
    mean_rewards: list[float] = []

    for iteration in range(1, args.num_iterations + 1):
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate

        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob

            next_obs_np, reward, terminated, truncated, info = envs.step(action.numpy())
            reward = torch.as_tensor(reward, dtype=torch.float32)
            if args.gamma > 0 and truncated.any():  # bootstrap at the time limit
                final = np.flatnonzero(truncated & ~terminated)
                final_obs = torch.as_tensor(np.stack(info["final_obs"][final]))
                with torch.no_grad():
                    reward[final] += args.gamma * agent.get_value(final_obs).flatten()
            rewards[step] = reward
            next_obs = torch.as_tensor(next_obs_np)
            next_done = torch.as_tensor(terminated | truncated, dtype=torch.float32)

        # generalized advantage estimation
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0.0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
                advantages[t] = lastgaelam
            returns = advantages + values

        # flatten the batch
        b_obs = obs.reshape((-1, *obs_space.shape))
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape((-1, *act_space.shape))
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # optimize the policy and value network
        generator = torch.Generator().manual_seed(args.seed + iteration)
        clipfracs = []
        for _epoch in range(args.update_epochs):
            b_inds = torch.randperm(args.batch_size, generator=generator)
            for start_i in range(0, args.batch_size, args.minibatch_size):
                mb_inds = b_inds[start_i : start_i + args.minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb_inds], b_actions[mb_inds]
                )
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                        mb_advantages.std() + 1e-8
                    )
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(
                    ratio, 1 - args.clip_coef, 1 + args.clip_coef
                )
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        mean_rewards.append(float(rewards.mean()))
        sps = global_step / (time.perf_counter() - start)
        if writer is not None:
            writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
            writer.add_scalar("charts/mean_step_reward", mean_rewards[-1], global_step)
            writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
            writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
            writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
            writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
            writer.add_scalar("losses/clipfrac", float(np.mean(clipfracs)), global_step)
            writer.add_scalar("charts/SPS", sps, global_step)
        if args.verbose:
            print(
                f"iteration {iteration}/{args.num_iterations}  step {global_step}  "
                f"mean step reward {mean_rewards[-1]:.3f}  SPS {sps:,.0f}"
            )

    envs.close()
    if writer is not None:
        writer.close()
    return {
        "agent": agent,
        "global_step": global_step,
        "first_mean_reward": mean_rewards[0],
        "last_mean_reward": mean_rewards[-1],
        "mean_rewards": mean_rewards,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = train(args)
    print(
        f"mean step reward: first rollout {result['first_mean_reward']:.3f}, "
        f"last rollout {result['last_mean_reward']:.3f} ({result['global_step']} steps)"
    )


if __name__ == "__main__":
    main()
