r"""Differential privacy of the devices' updates: clipping, Gaussian noise, accounting.

DP-FedAvg (McMahan, Ramage, Talwar and Zhang, "Learning Differentially Private
Recurrent Language Models", ICLR 2018) with **user-level** (here: device-level)
privacy: neighbouring inputs differ in *all* the data of one device. Every honest device
clips its update delta :math:`\Delta_k = \theta_k - \theta` to L2 norm
:math:`C` (``dp_clip_norm``),

.. math::

    \bar\Delta_k = \Delta_k \min\!\left(1, \frac{C}{\lVert \Delta_k \rVert_2}\right),

and Gaussian noise of standard deviation :math:`\sigma = z C` per coordinate
(:math:`z` = ``dp_noise_multiplier``) is added where ``dp_placement`` says:

``"central"`` (default, DP-FedAvg)
    The server adds the noise to the *sum* of the :math:`M` delivered clipped updates
    and averages uniformly, :math:`\theta^{+} = \theta + \big(\sum_{k\in\mathcal{D}}
    \bar\Delta_k + \mathcal{N}(0, \sigma^2 I)\big) / M` (DP-FedAvg with user weights
    :math:`w_k = 1`: sample-count weights would make the sensitivity depend on
    :math:`n_k`). Adding or removing one device changes the sum by at most :math:`C`,
    so each round is the Gaussian mechanism with noise multiplier :math:`z`. Trust
    model: an honest-but-curious world that sees the global models (the server itself
    is trusted, or the sum is formed by secure aggregation). Needs aggregation
    ``fedavg`` or ``mean`` (the noise is calibrated to the sum, not to a robust rule).
``"local"``
    Every device adds :math:`\mathcal{N}(0, \sigma^2 I)` to its own clipped update
    before transmitting it: the upload itself is private, against the server and
    anyone who overhears the uplink (eavesdroppers), and any aggregation rule
    (including the robust ones) is post-processing. Replacing one device's data
    moves its clipped update by up to :math:`2C`, so each round is the Gaussian
    mechanism with noise multiplier :math:`z / 2`.

Accounting
----------
Done by Google's ``dp_accounting`` library (Rényi DP, Mironov 2017, or privacy loss
distributions, Koskela et al. 2020; ``dp_accountant``), never by hand. What
:math:`\varepsilon` (at :math:`\delta` = ``dp_delta``) covers:

- device-level :math:`(\varepsilon, \delta)`-DP of each device's whole local dataset
  over all rounds of the episode so far: device :math:`k` is charged one
  ``GaussianDpEvent`` per round in which its update was *released* and the charges
  compose (``SelfComposedDpEvent``). Central: the rounds in which its update was
  delivered and aggregated (an undelivered update influences nothing). Local: every
  round, since every device transmits every round (delivered or not, an
  eavesdropper may have heard it).
- **no amplification by subsampling**: which updates arrive is decided by the
  channel and the agent's allocation, not by a secret uniformly random sample, so
  the accountant does not assume Poisson sampling. :func:`dp_epsilon` takes a
  ``sampling_probability`` for analyses that do.
- ``info["dp_epsilon"]`` is the largest :math:`\varepsilon` over the devices (the
  guarantee every device has); ``info["dp_epsilon_per_device"]`` each device's own.
  :math:`z = 0` with clipping gives :math:`\varepsilon = \infty` once released.
- malicious devices (:mod:`qfl_gym.learning.attacks`) that poison their updates do not
  follow the protocol: their updates are neither clipped nor noised. The guarantee
  is about the honest devices' data.

Randomness: the noise comes from its own generator (spawned from the learner's at
reset), one fixed-size draw per round whatever was delivered, so the channel, the
minibatch order and the attackers are the same with and without DP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from qfl_gym.config_fields import ConfigFields, param
from qfl_gym.validation import check_choice, check_float

DP_PLACEMENTS = ("central", "local")
DP_ACCOUNTANTS = ("rdp", "pld")
#: PLD discretization (epsilon is a valid upper bound; 1e-3 is ~10x faster than the
#: library's 1e-4 and changed epsilon by < 1e-6 relative in our checks)
PLD_DISCRETIZATION = 1e-3
#: rules whose output is a mean of the delivered updates (central noise fits them)
MEAN_RULES = ("fedavg", "mean")


@dataclass(frozen=True)
class PrivacyConfig(ConfigFields):
    """Device-level differential privacy of the uploaded updates (DP-FedAvg).

    Off by default (``dp_clip_norm=None``). Flat override names start with ``dp_`` so
    they never clash with other parts of a scenario.
    """

    dp_clip_norm: float | None = param(
        None,
        "-",
        "L2 bound C on each device's update delta theta_k - theta (parameter units, "
        "radians for rotation angles); None: no clipping, no DP",
        "McMahan et al., ICLR 2018",
    )
    dp_noise_multiplier: float = param(
        0.0,
        "-",
        "z: Gaussian noise of std sigma = z C per coordinate (0: clipping only, epsilon = inf)",
        "McMahan et al., ICLR 2018",
    )
    dp_placement: str = param(
        "central",
        "-",
        "'central': the server noises the sum of the clipped updates (DP-FedAvg); "
        "'local': each device noises its own clipped update before uploading",
    )
    dp_delta: float = param(
        1e-5, "-", "delta of the reported (epsilon, delta)-DP, in (0, 1)", "common: << 1/K"
    )
    dp_accountant: str = param(
        "rdp",
        "-",
        "privacy accountant of dp_accounting: 'rdp' (Renyi DP, fast) or 'pld' (privacy "
        "loss distributions, tighter, slower)",
        "Mironov 2017; Koskela et al. 2020",
    )

    def __post_init__(self) -> None:
        if self.dp_clip_norm is not None:
            check_float("dp_clip_norm", self.dp_clip_norm, low=0.0, low_inclusive=False)
        check_float("dp_noise_multiplier", self.dp_noise_multiplier, low=0.0)
        if self.dp_noise_multiplier > 0 and self.dp_clip_norm is None:
            raise ValueError(
                f"dp_noise_multiplier={self.dp_noise_multiplier} needs dp_clip_norm: the "
                "noise std is dp_noise_multiplier * dp_clip_norm"
            )
        check_choice("dp_placement", self.dp_placement, DP_PLACEMENTS)
        check_float(
            "dp_delta",
            self.dp_delta,
            low=0.0,
            high=1.0,
            low_inclusive=False,
            high_inclusive=False,
        )
        check_choice("dp_accountant", self.dp_accountant, DP_ACCOUNTANTS)

    # ----------------------------------------------------------------- derived
    @property
    def enabled(self) -> bool:
        """Whether updates are clipped (and noised, with ``dp_noise_multiplier > 0``)."""
        return self.dp_clip_norm is not None

    @property
    def noise_std(self) -> float:
        """Noise std per coordinate ``sigma = z C`` (0 when off), parameter units."""
        return self.dp_noise_multiplier * self.dp_clip_norm if self.enabled else 0.0

    @property
    def accounting_noise_multiplier(self) -> float:
        """Noise std over the L2 sensitivity of one round: ``z`` central, ``z / 2`` local."""
        z = self.dp_noise_multiplier
        return z if self.dp_placement == "central" else z / 2.0


def check_privacy_rule(privacy: PrivacyConfig, rule: str) -> None:
    """``ValueError`` if central DP noise is combined with a non-mean aggregation rule."""
    if privacy.enabled and privacy.dp_placement == "central" and rule not in MEAN_RULES:
        raise ValueError(
            f"dp_placement='central' calibrates the noise to the mean of the clipped "
            f"updates, so aggregation must be one of {', '.join(map(repr, MEAN_RULES))}, "
            f"got {rule!r}; use dp_placement='local' with robust rules"
        )


# ------------------------------------------------------------------ mechanism
def clip_updates(deltas: np.ndarray, clip_norm: float) -> np.ndarray:
    """Rows of ``deltas`` (M, P) scaled to L2 norm at most ``clip_norm`` (a new array)."""
    norms = np.sqrt(np.einsum("mp,mp->m", deltas, deltas))
    scale = np.minimum(1.0, clip_norm / np.maximum(norms, 1e-300))
    return deltas * scale[:, None]


def dp_event(noise_multiplier: float, rounds: int = 1, sampling_probability: float | None = None):
    """The ``dp_accounting`` event of ``rounds`` Gaussian-mechanism rounds.

    Parameters
    ----------
    noise_multiplier : float
        Noise std over the L2 sensitivity of one round (>= 0).
    rounds : int
        Number of (self-)composed rounds (>= 0).
    sampling_probability : float, optional
        Poisson sampling probability ``q`` in (0, 1] of each round (amplification by
        subsampling); None: every round is a full Gaussian mechanism.
    """
    from dp_accounting import dp_event as events

    check_float("noise_multiplier", noise_multiplier, low=0.0)
    if isinstance(rounds, bool) or not isinstance(rounds, int | np.integer) or rounds < 0:
        raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
    event = events.GaussianDpEvent(float(noise_multiplier))
    if sampling_probability is not None:
        check_float(
            "sampling_probability", sampling_probability, low=0.0, high=1.0, low_inclusive=False
        )
        event = events.PoissonSampledDpEvent(float(sampling_probability), event)
    return events.SelfComposedDpEvent(event, int(rounds))


def make_accountant(accountant: str = "rdp"):
    """A fresh ``dp_accounting`` accountant (add-or-remove-one neighbouring relation)."""
    check_choice("dp_accountant", accountant, DP_ACCOUNTANTS)
    if accountant == "rdp":
        from dp_accounting.rdp import RdpAccountant

        return RdpAccountant()
    from dp_accounting.pld import PLDAccountant

    return PLDAccountant(value_discretization_interval=PLD_DISCRETIZATION)


def dp_epsilon(
    noise_multiplier: float,
    rounds: int,
    delta: float = 1e-5,
    accountant: str = "rdp",
    sampling_probability: float | None = None,
) -> float:
    """Epsilon at ``delta`` of ``rounds`` composed Gaussian-mechanism rounds.

    ``noise_multiplier`` is the noise std over the L2 sensitivity (use
    :attr:`PrivacyConfig.accounting_noise_multiplier` for a config). ``inf`` when it is
    0 and ``rounds >= 1``; 0 for 0 rounds.
    """
    check_float("delta", delta, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    event = dp_event(noise_multiplier, rounds, sampling_probability)
    if rounds == 0:
        return 0.0
    acc = make_accountant(accountant)
    acc.compose(event)
    return float(acc.get_epsilon(delta))


class PrivacyAccountant:
    """Epsilon after ``c`` released rounds, for any count ``c`` (memoized).

    One ``dp_accounting`` accountant is advanced one ``GaussianDpEvent`` at a time and
    the epsilon after each composition is kept, so per-device epsilons (devices released
    in different numbers of rounds) cost one composition per new count, across episodes.

    Parameters
    ----------
    noise_multiplier : float
        Noise std over the L2 sensitivity of one round.
    delta : float
        Target delta.
    accountant : {"rdp", "pld"}
    """

    def __init__(self, noise_multiplier: float, delta: float, accountant: str = "rdp") -> None:
        self.noise_multiplier = check_float("noise_multiplier", noise_multiplier, low=0.0)
        self.delta = check_float(
            "delta", delta, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
        )
        self.accountant = check_choice("accountant", accountant, DP_ACCOUNTANTS)
        self._acc: Any = None
        self._eps = [0.0]

    def epsilon(self, count: int) -> float:
        """Epsilon after ``count`` released rounds (0 for 0)."""
        count = int(count)
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if self.noise_multiplier == 0.0:
            return 0.0 if count == 0 else math.inf
        if count >= len(self._eps):
            from dp_accounting import dp_event as events

            if self._acc is None:
                self._acc = make_accountant(self.accountant)
            event = events.GaussianDpEvent(self.noise_multiplier)
            while len(self._eps) <= count:
                self._acc.compose(event)
                self._eps.append(float(self._acc.get_epsilon(self.delta)))
        return self._eps[count]

    def epsilons(self, counts: np.ndarray) -> np.ndarray:
        """Epsilon for every entry of ``counts`` (int array), same shape."""
        counts = np.asarray(counts)
        if counts.size:
            self.epsilon(int(counts.max()))
        return np.array([self.epsilon(int(c)) for c in counts.ravel()]).reshape(counts.shape)


class DPUpdates:
    """Clipping, noise and per-device accounting of one federated task's updates.

    Parameters
    ----------
    config : PrivacyConfig
        Must be enabled (``dp_clip_norm`` set).
    num_devices : int
        K.
    """

    def __init__(self, config: PrivacyConfig, num_devices: int) -> None:
        if not isinstance(config, PrivacyConfig) or not config.enabled:
            raise ValueError("DPUpdates needs an enabled PrivacyConfig (dp_clip_norm set)")
        self.config = config
        self.num_devices = int(num_devices)
        self.accountant = PrivacyAccountant(
            config.accounting_noise_multiplier, config.dp_delta, config.dp_accountant
        )
        self.releases = np.zeros(self.num_devices, dtype=np.int64)
        self._rng: np.random.Generator | None = None

    def reset(self, rng: np.random.Generator) -> None:
        """New episode: zero release counts; ``rng`` is the noise stream."""
        self._rng = rng
        self.releases[:] = 0

    @property
    def central(self) -> bool:
        """Whether the server adds the noise (else each device does)."""
        return self.config.dp_placement == "central"

    def privatize(self, deltas: np.ndarray, protocol: np.ndarray) -> np.ndarray:
        """Client side: clip (and with local placement, noise) the rows in ``protocol``.

        Parameters
        ----------
        deltas : ndarray, shape (K, P)
            Every device's update.
        protocol : ndarray of bool, shape (K,)
            Devices that follow the protocol (honest ones); other rows pass unchanged.

        Returns
        -------
        ndarray, shape (K, P)
            A new array. Local placement draws ``K * P`` normals every round.
        """
        out = deltas.copy()
        cfg = self.config
        out[protocol] = clip_updates(deltas[protocol], cfg.dp_clip_norm)
        if not self.central and cfg.dp_noise_multiplier > 0:
            noise = self._rng.normal(0.0, cfg.noise_std, size=deltas.shape)
            out[protocol] += noise[protocol]
        return out

    def noisy_mean(self, deltas: np.ndarray, delivered: np.ndarray) -> np.ndarray:
        """Server side (central): ``(sum of delivered rows + N(0, sigma^2 I)) / M``, (P,).

        Draws ``P`` normals every round (also when nothing was delivered: then the
        result is zero and nothing is released).
        """
        cfg = self.config
        P = deltas.shape[1]
        noise = (
            self._rng.normal(0.0, cfg.noise_std, size=P)
            if cfg.dp_noise_multiplier > 0
            else np.zeros(P)
        )
        M = int(delivered.sum())
        if M == 0:
            return np.zeros(P)
        return (deltas[delivered].sum(axis=0) + noise) / M

    def account(self, delivered: np.ndarray) -> None:
        """Charge one round: the delivered devices (central) or every device (local)."""
        if self.central:
            self.releases += np.asarray(delivered, dtype=bool)
        else:
            self.releases += 1

    @property
    def epsilon_per_device(self) -> np.ndarray:
        """Each device's epsilon at ``dp_delta`` so far (K,)."""
        return self.accountant.epsilons(self.releases)

    @property
    def epsilon(self) -> float:
        """The largest epsilon over the devices (the guarantee every device has)."""
        return self.accountant.epsilon(int(self.releases.max(initial=0)))
