r"""A block of devices whose choices are optimized while every other device is fixed.

Block coordinate descent (BCD) and the single-shot QAOA both work on a
:class:`Block`: ``m`` devices of an :class:`~qfl_gym.wireless.problem.AllocationProblem`,
each choosing one of ``M`` *options* (a (sub-channel, power level) pair), while all
other devices keep the incumbent assignment. ``variables`` says which options a device
has:

- ``"joint"``: every (sub-channel ``n``, level ``l``) pair, ``M = N * L``, option index
  ``a = n * L + l``;
- ``"channel"``: every sub-channel at the device's incumbent level, ``M = N``;
- ``"level"``: every level on the device's incumbent sub-channel, ``M = L``.

An *option tuple* ``(a_0, ..., a_{m-1})`` is indexed ``t = sum_i a_i M^(m-1-i)``
(device 0 most significant), which is the computational-basis index of the binary
encoding with wire 0 as the most significant bit.

Exact reward by sub-channel decomposition
-----------------------------------------
The env's reward (:meth:`AllocationProblem.reward`) is a sum over sub-channels: rates,
energy and outage of the devices on sub-channel ``n`` depend only on who is on ``n``.
With the non-block devices fixed, the contribution of sub-channel ``n`` depends only on
which block devices are on ``n`` and at which level: at most ``(1 + L)^m`` cases, far
fewer than the ``M^m`` option tuples. :meth:`Block.reward_table` evaluates each case
once with the NOMA/SIC formula of :mod:`qfl_gym.wireless.noma` and gathers, so the
exact reward of all ``4096`` tuples of a 3-device joint block costs a few hundred
small SINR evaluations. (Within a sub-channel devices keep the order of their indices,
so the SIC tie-break agrees with the env's.)

Pairwise reward model
---------------------
Write the reward as ``f = sum_n R_n(S_n)``, with ``S_n`` the set of (device, level) on
sub-channel ``n``, ``F_n`` its fixed part. The Möbius expansion of ``R_n`` around
``F_n``, truncated after second order, is

.. math::

    f(a) \approx \sum_n R_n(F_n)
      + \sum_i \Delta_i(a_i)
      + \sum_{i<j} \Delta_{ij}(a_i, a_j),

    \Delta_i(a) = R_{n}(F_{n} \cup \{i@a\}) - R_{n}(F_{n}),

    \Delta_{ij}(a, b) = R_n(F_n \cup \{i@a, j@b\}) - R_n(F_n \cup \{i@a\})
                        - R_n(F_n \cup \{j@b\}) + R_n(F_n)
                        \quad \text{if } n_a = n_b = n, \text{ else } 0.

``Delta_i`` is the reward device ``i`` brings alone on its sub-channel (its rate minus
the interference it adds to the fixed devices, minus its energy price), ``Delta_ij``
the pairwise interference correction of two block devices sharing a sub-channel
(negative under perfect SIC, where ``R_n`` is concave in the load). The model is exact
whenever at most two block devices share a sub-channel, and it includes imperfect SIC,
energy and outage terms exactly at that order because every ``R_n`` is the true
per-sub-channel reward. It is the quadratic cost of the ``qubo`` mode
(:mod:`agents.qaoa.qubo`).

Objectives
----------
Everything above holds for every objective of the problem
(:func:`~qfl_gym.wireless.problem.objective_value`): the per-device terms are the
problem's own (:func:`~qfl_gym.wireless.problem.device_objective`). The ``round-time``
objective adds ``slowest_weight * min_k r_k``, a minimum over devices: the exact table
combines it over sub-channels by a minimum (``min_k r_k = min_n min_{k on n} r_k``), so
:meth:`Block.reward_table` stays exact, but a quadratic model cannot carry it. The
pairwise model (and the repair preferences) then expand a per-device surrogate instead:
``-slowest_weight * max(0, t - r_k) / 1e6`` with ``t`` the incumbent's mean rate, the
``min-rate`` penalty that lifts every device below ``t``. Candidates are still scored on
the true objective (:meth:`Block.rewards`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qfl_gym.validation import check_choice
from qfl_gym.wireless import noma
from qfl_gym.wireless.problem import AllocationProblem, device_objective

VARIABLES = ("joint", "channel", "level")


@dataclass(frozen=True)
class PairwiseModel:
    """Second-order reward model of a block (see the module docstring), Mbit/s.

    Attributes
    ----------
    constant : float
        ``sum_n R_n(F_n)``: reward of the fixed devices alone.
    single : ndarray, shape (m, M)
        ``Delta_i(a)``.
    pair : ndarray, shape (m, M, m, M)
        ``Delta_ij(a, b)``, symmetric, zero for ``i == j`` and different sub-channels.
    """

    constant: float
    single: np.ndarray
    pair: np.ndarray

    def value(self, options: np.ndarray) -> np.ndarray:
        """Model reward of option tuples ``(S, m)``, shape (S,)."""
        options = np.asarray(options)
        m = options.shape[-1]
        rows = np.arange(m)
        out = self.constant + self.single[rows, options].sum(axis=-1)
        for i in range(m):
            for j in range(i + 1, m):
                out = out + self.pair[i, options[..., i], j, options[..., j]]
        return out


class Block:
    """``m`` devices of ``problem`` to re-optimize, the others fixed at the incumbent.

    Parameters
    ----------
    problem : AllocationProblem
        The decision instance.
    channels, levels : array_like of int, shape (K,)
        Incumbent assignment; the non-block devices keep it.
    devices : array_like of int, shape (m,)
        Distinct device indices of the block, in qubit order.
    variables : {"joint", "channel", "level"}
        Options of each block device (module docstring).
    """

    def __init__(
        self,
        problem: AllocationProblem,
        channels: Any,
        levels: Any,
        devices: Any,
        variables: str = "joint",
    ) -> None:
        check_choice("variables", variables, VARIABLES)
        channels, levels = problem.check_assignment(channels, levels)
        if channels.ndim != 1:
            raise ValueError(f"the incumbent must be one assignment (K,), got {channels.shape}")
        K, N, L = problem.num_devices, problem.num_subchannels, problem.num_power_levels
        devices = np.asarray(devices, dtype=np.int64).reshape(-1)
        if devices.size and (devices.min() < 0 or devices.max() >= K):
            raise ValueError(f"devices must be in 0..{K - 1}, got {devices.tolist()}")
        if np.unique(devices).size != devices.size:
            raise ValueError(f"devices must be distinct, got {devices.tolist()}")
        self.problem = problem
        self.channels = channels.astype(np.int64)
        self.levels = levels.astype(np.int64)
        self.devices = devices
        self.variables = variables
        m = devices.size
        if variables == "joint":
            a = np.arange(N * L)
            oc, ol = np.broadcast_to(a // L, (m, N * L)), np.broadcast_to(a % L, (m, N * L))
        elif variables == "channel":
            oc = np.broadcast_to(np.arange(N), (m, N))
            ol = np.repeat(self.levels[devices][:, None], N, axis=1)
        else:
            oc = np.repeat(self.channels[devices][:, None], L, axis=1)
            ol = np.broadcast_to(np.arange(L), (m, L))
        self.option_channels = np.ascontiguousarray(oc, dtype=np.int64)
        self.option_levels = np.ascontiguousarray(ol, dtype=np.int64)
        self._channel_cache: dict[int, tuple] = {}
        #: rate threshold (bit/s) of the separable surrogate of a minimum over devices
        self.surrogate_threshold_bps: float | None = None
        if not problem.constants.separable:
            self.surrogate_threshold_bps = float(problem.rates(self.channels, self.levels).mean())

    # ----------------------------------------------------------------- layout
    @property
    def num_devices(self) -> int:
        """m, devices in the block."""
        return int(self.devices.size)

    @property
    def num_options(self) -> int:
        """M, options per device."""
        return int(self.option_channels.shape[1])

    @property
    def num_tuples(self) -> int:
        """``M ** m``, option tuples of the block."""
        return self.num_options**self.num_devices

    def incumbent_options(self) -> np.ndarray:
        """Option index (m,) of each block device's incumbent choice."""
        d = self.devices
        if self.variables == "joint":
            return self.channels[d] * self.problem.num_power_levels + self.levels[d]
        if self.variables == "channel":
            return self.channels[d].copy()
        return self.levels[d].copy()

    def tuple_index(self, options: np.ndarray) -> np.ndarray:
        """Index ``sum_i a_i M^(m-1-i)`` of option tuples ``(S, m)``."""
        options = np.asarray(options, dtype=np.int64)
        weights = self.num_options ** np.arange(self.num_devices - 1, -1, -1, dtype=np.int64)
        return options @ weights

    def tuple_options(self, index: np.ndarray) -> np.ndarray:
        """Option tuples ``(S, m)`` of tuple indices ``(S,)``."""
        index = np.asarray(index, dtype=np.int64)
        M, m = self.num_options, self.num_devices
        powers = M ** np.arange(m - 1, -1, -1, dtype=np.int64)
        return (index[..., None] // powers) % M

    def assignments(self, options: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full assignments ``(channels (S, K), levels (S, K))`` of option tuples (S, m)."""
        options = np.asarray(options, dtype=np.int64)
        S = options.shape[0]
        rows = np.arange(self.num_devices)
        c = np.repeat(self.channels[None], S, axis=0)
        lv = np.repeat(self.levels[None], S, axis=0)
        c[:, self.devices] = self.option_channels[rows, options]
        lv[:, self.devices] = self.option_levels[rows, options]
        return c, lv

    def rewards(self, options: np.ndarray) -> np.ndarray:
        """Exact env reward (Mbit/s) of option tuples ``(S, m)``: ``problem.reward``."""
        c, lv = self.assignments(options)
        return np.asarray(self.problem.reward(c, lv), dtype=float).reshape(-1)

    # ------------------------------------------------- sub-channel contributions
    def _channel_setup(self, n: int) -> tuple:
        """Fixed devices on ``n`` merged with the block devices, in device order."""
        cached = self._channel_cache.get(n)
        if cached is not None:
            return cached
        p = self.problem
        in_block = np.zeros(p.num_devices, dtype=bool)
        in_block[self.devices] = True
        fixed = np.flatnonzero((self.channels == n) & ~in_block)
        merged = np.concatenate([fixed, self.devices])
        order = np.argsort(merged, kind="stable")
        pos = np.empty_like(order)
        pos[order] = np.arange(order.size)
        tx_fixed = p.power_levels_w[self.levels[fixed]]
        setup = (
            pos[: fixed.size],  # column of each fixed device
            pos[fixed.size :],  # column of each block device
            tx_fixed,
            tx_fixed * p.gains[fixed, n],
            p.gains[self.devices, n],
            merged.size,
        )
        self._channel_cache[n] = setup
        return setup

    def _channel_outcome(self, n: int, states: np.ndarray) -> tuple:
        """``(rate, sinr, tx, present)``, each (C, J), of sub-channel ``n``'s devices."""
        p = self.problem
        states = np.asarray(states, dtype=np.int64).reshape(-1, self.num_devices)
        C = states.shape[0]
        col_f, col_b, tx_f, rx_f, g_b, J = self._channel_setup(n)
        if J == 0:
            empty = np.zeros((C, 0))
            return empty, empty, empty, empty.astype(bool)
        present_b = states > 0
        tx_b = np.where(present_b, p.power_levels_w[np.maximum(states - 1, 0)], 0.0)
        rx = np.zeros((C, J))
        tx = np.zeros((C, J))
        present = np.zeros((C, J), dtype=bool)
        rx[:, col_f] = rx_f
        tx[:, col_f] = tx_f
        present[:, col_f] = True
        rx[:, col_b] = tx_b * g_b
        tx[:, col_b] = tx_b
        present[:, col_b] = present_b
        sinr = noma.sic_sinr(
            rx, np.zeros((C, J), dtype=np.int64), p.noise_w[n : n + 1], p.sic_residual
        )
        return noma.rates_bps(sinr, p.bandwidth_hz), sinr, tx, present

    def channel_rewards(self, n: int, states: np.ndarray) -> np.ndarray:
        """Reward contribution (Mbit/s) of sub-channel ``n`` for block states ``(C, m)``.

        ``states[c, i]`` is 0 if block device ``i`` is not on ``n``, else ``1 + level``.
        Includes the fixed devices on ``n``: the sum of their per-device terms
        (:func:`~qfl_gym.wireless.problem.device_objective`); the minimum over devices
        of ``round-time`` is :meth:`channel_slowest_rates`.
        """
        rate, sinr, tx, present = self._channel_outcome(n, states)
        if rate.shape[1] == 0:
            return np.zeros(rate.shape[0])
        return (device_objective(rate, sinr, tx, self.problem.constants) * present).sum(axis=1)

    def channel_slowest_rates(self, n: int, states: np.ndarray) -> np.ndarray:
        """Slowest rate (bit/s) on sub-channel ``n`` per state ``(C,)``; inf if empty."""
        rate, _, _, present = self._channel_outcome(n, states)
        return np.where(present, rate, np.inf).min(axis=1, initial=np.inf)

    def model_channel_rewards(self, n: int, states: np.ndarray) -> np.ndarray:
        """:meth:`channel_rewards` as the pairwise model sees it (module docstring).

        Equal to it for separable objectives; with a minimum over devices, plus the
        separable surrogate ``-slowest_weight * max(0, t - r_k) / 1e6``.
        """
        if self.surrogate_threshold_bps is None:
            return self.channel_rewards(n, states)
        rate, sinr, tx, present = self._channel_outcome(n, states)
        if rate.shape[1] == 0:
            return np.zeros(rate.shape[0])
        c = self.problem.constants
        u = device_objective(rate, sinr, tx, c) - (1e-6 * c.slowest_weight) * np.maximum(
            self.surrogate_threshold_bps - rate, 0.0
        )
        return (u * present).sum(axis=1)

    def _states(self, n: int) -> np.ndarray:
        """``(m, M)`` state of each option on sub-channel ``n`` (0 absent, 1 + level)."""
        return np.where(self.option_channels == n, 1 + self.option_levels, 0)

    # --------------------------------------------------------------- tables
    def reward_table(self) -> np.ndarray:
        """Exact reward (Mbit/s) of every option tuple, shape ``(M ** m,)``.

        Uses the sub-channel decomposition of the module docstring; equals
        :meth:`rewards` of all tuples (to float rounding).
        """
        m, M = self.num_devices, self.num_options
        total = np.zeros((M,) * m) if m else np.zeros(())
        slowest_weight = self.problem.constants.slowest_weight
        slowest = np.full((M,) * m, np.inf) if m else np.full((), np.inf)
        for n in range(self.problem.num_subchannels):
            st = self._states(n)
            uniq, inverse = [], []
            for i in range(m):
                u, inv = np.unique(st[i], return_inverse=True)
                uniq.append(u)
                inverse.append(inv.reshape(-1))
            sizes = [u.size for u in uniq]
            grid = np.indices(sizes).reshape(m, -1).T if m else np.zeros((1, 0), np.int64)
            configs = np.stack([uniq[i][grid[:, i]] for i in range(m)], axis=1) if m else grid
            values = self.channel_rewards(n, configs)
            # config index of each option tuple, by broadcasting one axis per device
            idx = np.zeros((1,) * m, dtype=np.int64) if m else np.zeros((), np.int64)
            stride = 1
            for i in range(m - 1, -1, -1):
                shape = [1] * m
                shape[i] = M
                idx = idx + (inverse[i] * stride).reshape(shape)
                stride *= sizes[i]
            total = total + values[idx]
            if slowest_weight:
                slowest = np.minimum(slowest, self.channel_slowest_rates(n, configs)[idx])
        if slowest_weight:
            total = total + (1e-6 * slowest_weight) * slowest
        return np.asarray(total, dtype=float).reshape(-1)

    def pairwise_model(self) -> PairwiseModel:
        """The second-order (pairwise interference) model of the module docstring.

        Of :meth:`model_channel_rewards`: the objective itself when it is a sum of
        per-device terms, else its separable surrogate (module docstring).
        """
        m, M = self.num_devices, self.num_options
        N = self.problem.num_subchannels
        base = np.array([self.model_channel_rewards(n, np.zeros((1, m)))[0] for n in range(N)])
        single = np.zeros((m, M))
        pair = np.zeros((m, M, m, M))
        for n in range(N):
            st = self._states(n)
            ii, aa = np.nonzero(st)  # (device, option) pairs on sub-channel n
            if ii.size == 0:
                continue
            one = np.zeros((ii.size, m), dtype=np.int64)
            one[np.arange(ii.size), ii] = st[ii, aa]
            r1 = self.model_channel_rewards(n, one) - base[n]
            single[ii, aa] = r1
            u, v = np.triu_indices(ii.size, k=1)
            keep = ii[u] != ii[v]
            u, v = u[keep], v[keep]
            if u.size == 0:
                continue
            two = np.zeros((u.size, m), dtype=np.int64)
            rows = np.arange(u.size)
            two[rows, ii[u]] = st[ii[u], aa[u]]
            two[rows, ii[v]] = st[ii[v], aa[v]]
            r2 = self.model_channel_rewards(n, two) - base[n] - r1[u] - r1[v]
            pair[ii[u], aa[u], ii[v], aa[v]] = r2
            pair[ii[v], aa[v], ii[u], aa[u]] = r2
        return PairwiseModel(float(base.sum()), single, pair)
