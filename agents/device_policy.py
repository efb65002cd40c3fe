"""A device-permutation-equivariant actor-critic policy for stable-baselines3.

:class:`DevicePolicy` reads an allocation env's observation through its
:class:`~qfl_gym.envs.observation.ObservationLayout` (never by offsets): every device
becomes a token of its own features (full-power SNR per sub-channel, last rate and, on
QFL-v0, local loss and staleness) plus the global features (elapsed time, global
loss); a shared encoder embeds the tokens, attention layers (a transformer encoder over
device tokens, ``mixer="attention"``) or Deep-Sets layers (each token sees the mean and
max of all tokens, ``mixer="deepsets"``) mix them, and shared per-device heads give
every device N sub-channel logits and L power-level logits. The value comes from the
mean and max of the tokens. So:

- permuting the devices of an observation permutes the action logits the same way and
  leaves the value unchanged;
- the weights do not depend on K: a policy trained at K=10 runs at K=50
  (:func:`policy_for_layout`, or ``agents.make("device-policy", env, path=...)``). They
  depend on N (each device has N SNR features) and on L.

Use it as any SB3 policy::

    from stable_baselines3 import PPO
    from agents.device_policy import DevicePolicy

    PPO(DevicePolicy, venv, policy_kwargs=dict(layout="channel-power:K=10,N=4"))

or from an rl-zoo3 YAML: ``policy: 'agents.device_policy.DevicePolicy'`` with
``policy_kwargs: "dict(layout='channel-power:K=10,N=4')"``. ``layout`` is an
``ObservationLayout`` or its ``spec`` string.

The action distribution (:class:`DeviceActionDistribution`) is SB3's
``MultiCategorical`` over ``MultiDiscrete([N]*K + [L]*K)`` (logits ordered: sub-channel
logits of devices 0..K-1, then level logits of devices 0..K-1), computed as two batched
``(B, K, N)`` / ``(B, K, L)`` categoricals instead of 2K separate ones.

Weights files (:func:`save_weights` / :func:`load_weights`) hold only tensors and a
JSON-able configuration and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from agents.base import Agent, problem_from
from qfl_gym.envs.observation import ObservationLayout, layout_from_spec
from qfl_gym.validation import check_bool, check_int

MIXERS = ("attention", "deepsets", "grid")
HEADS = ("independent", "autoregressive")
WEIGHTS_FORMAT = "qfl-gym-device-policy-1"


def resolve_layout(layout: ObservationLayout | str | None) -> ObservationLayout:
    """An ``ObservationLayout`` from a layout or its spec string."""
    if isinstance(layout, ObservationLayout):
        return layout
    if isinstance(layout, str):
        return layout_from_spec(layout)
    raise ValueError(
        "DevicePolicy needs policy_kwargs=dict(layout=...): the env's observation layout "
        "(env.unwrapped.observation_layout) or its spec string such as "
        f"'channel-power:K=10,N=4'; got {layout!r}"
    )


def layout_of(env: Any) -> ObservationLayout:
    """The observation layout of a (wrapped) single env, gymnasium vector env or SB3 VecEnv."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        layout = getattr(candidate, "observation_layout", None)
        if isinstance(layout, ObservationLayout):
            return layout
    get_attr = getattr(env, "get_attr", None)
    if callable(get_attr):
        try:
            layout = get_attr("observation_layout", indices=[0])[0]
        except (AttributeError, TypeError):
            layout = None
        if isinstance(layout, ObservationLayout):
            return layout
    raise ValueError(
        f"{type(env).__name__} has no observation_layout; pass a qfl_gym env "
        "(ChannelPower-v0, QFL-v0 or their vector envs)"
    )


def gumbel_noise(shape: tuple[int, ...]) -> torch.Tensor:
    """Standard Gumbel draws from torch's global generator (seeded by SB3):
    ``argmax(logits + noise)`` is a draw from ``softmax(logits)``."""
    return -torch.log(-torch.log(torch.rand(shape).clamp_(1e-20, 1.0)))


class DeviceActionDistribution(MultiCategoricalDistribution):
    """SB3's ``MultiCategorical`` over ``[N]*K + [L]*K`` computed as two batched categoricals.

    Same log-probabilities, entropies and modes as ``MultiCategoricalDistribution``;
    sampling uses the Gumbel-max trick on torch's global generator (seeded by SB3).
    """

    def __init__(self, num_devices: int, num_subchannels: int, num_levels: int) -> None:
        K, N, L = num_devices, num_subchannels, num_levels
        super().__init__([N] * K + [L] * K)
        self.K, self.N, self.L = K, N, L

    def proba_distribution(self, action_logits: torch.Tensor) -> DeviceActionDistribution:
        B, K = action_logits.shape[0], self.K
        self.ch_logp = torch.log_softmax(action_logits[:, : K * self.N].view(B, K, self.N), -1)
        self.lv_logp = torch.log_softmax(action_logits[:, K * self.N :].view(B, K, self.L), -1)
        return self

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        a = actions.long()
        K = self.K
        ch = self.ch_logp.gather(-1, a[:, :K, None]).squeeze(-1)
        lv = self.lv_logp.gather(-1, a[:, K:, None]).squeeze(-1)
        return ch.sum(-1) + lv.sum(-1)

    def entropy(self) -> torch.Tensor:
        def ent(logp: torch.Tensor) -> torch.Tensor:
            return -(logp.exp() * logp).sum((-1, -2))

        return ent(self.ch_logp) + ent(self.lv_logp)

    def sample(self) -> torch.Tensor:
        def gumbel_argmax(logp: torch.Tensor) -> torch.Tensor:
            return (logp + gumbel_noise(logp.shape)).argmax(-1)

        return torch.cat([gumbel_argmax(self.ch_logp), gumbel_argmax(self.lv_logp)], 1)

    def mode(self) -> torch.Tensor:
        return torch.cat([self.ch_logp.argmax(-1), self.lv_logp.argmax(-1)], 1)


class _AutoregressiveDecoder(nn.Module):
    """Per-device (sub-channel, level) logits given what earlier devices chose.

    Each sub-channel keeps a state: the sum of ``relu(W h_jn + E l_j)`` over the earlier
    devices ``j`` that chose it (sub-channel ``n``, level ``l_j``). Device ``i``'s logits
    for the pair ``(n, l)`` come from its token ``h_in`` and sub-channel ``n``'s state.
    """

    def __init__(self, d: int, num_levels: int) -> None:
        super().__init__()
        self.token = nn.Linear(d, d)
        self.state = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, num_levels)
        self.write = nn.Linear(d, d)
        self.level_embed = nn.Embedding(num_levels, d)
        nn.init.zeros_(self.out.bias)  # near-uniform initial policy
        self.out.weight.data.mul_(0.01)

    def contribution(self, chosen: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """What a device that chose token ``chosen`` at ``level`` adds to its sub-channel."""
        return torch.relu(self.write(chosen) + self.level_embed(level))


class DeviceAutoregressiveDistribution(MultiCategoricalDistribution):
    """Devices decide one after another, strongest first, each seeing earlier choices.

    Over the same ``MultiDiscrete([N]*K + [L]*K)`` actions as
    :class:`DeviceActionDistribution`, but device ``i`` draws its (sub-channel, level)
    pair from a categorical over the ``N*L`` pairs conditioned on the choices of the
    devices before it, in the order of their best full-power SNR (descending), so the
    policy can coordinate ("one strong device per sub-channel") and stays equivariant to
    permuting devices. ``log_prob`` is exact and parallel over devices (the states are
    prefix sums of the given actions); ``sample`` / ``mode`` decide devices in K
    sequential steps (``mode`` takes the most likely pair at each step). ``entropy`` is
    the sum of the per-device conditional entropies along the actions last given to
    ``log_prob`` (what PPO's entropy bonus uses), else along the mode.
    """

    def __init__(self, num_devices: int, num_subchannels: int, num_levels: int) -> None:
        K, N, L = num_devices, num_subchannels, num_levels
        super().__init__([N] * K + [L] * K)
        self.K, self.N, self.L = K, N, L
        self.decoder: _AutoregressiveDecoder | None = None

    def proba_distribution(self, latent) -> DeviceAutoregressiveDistribution:
        """``latent``: ``(tokens (B, K, N, d) in decision order, order (B, K))``.

        ``order[b, i]`` is the device that decides ``i``-th.
        """
        self.h, self.order = latent
        self._entropy = None
        return self

    def _step_logits(self, pre: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.decoder.out(torch.relu(pre + state)).flatten(-2)  # (..., N*L)

    def _to_decision_order(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = actions.long()
        return a[:, : self.K].gather(1, self.order), a[:, self.K :].gather(1, self.order)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        dec, h = self.decoder, self.h
        ch, lv = self._to_decision_order(actions)
        where = ch[:, :, None, None].expand(-1, -1, 1, h.shape[-1])
        u = dec.state(dec.contribution(h.gather(2, where).squeeze(2), lv))  # (B, K, d)
        placed = torch.zeros_like(h).scatter(2, where, u[:, :, None])  # on its sub-channel
        before = torch.cat([torch.zeros_like(placed[:, :1]), placed.cumsum(1)[:, :-1]], 1)
        logp = torch.log_softmax(self._step_logits(dec.token(h), before), -1)  # (B, K, N*L)
        self._entropy = -(logp.exp() * logp).sum((-1, -2))
        return logp.gather(2, (ch * self.L + lv)[:, :, None]).squeeze(-1).sum(-1)

    def entropy(self) -> torch.Tensor:
        if self._entropy is None:
            self.log_prob(self.mode())
        return self._entropy

    def _decide(self, greedy: bool) -> torch.Tensor:
        # The K sequential steps run in numpy: at a batch of one observation a step is a
        # few microseconds there against tens in torch's eager dispatch.
        dec, L = self.decoder, self.L
        B, K, N, d = self.h.shape
        with torch.no_grad():
            h = self.h
            pre = dec.token(h).numpy()
            # what each device would add to a sub-channel's state, for every (n, l) pair
            levels = dec.level_embed.weight  # (L, d)
            adds = dec.state(torch.relu(dec.write(h)[..., None, :] + levels)).flatten(2, 3)
            adds = adds.numpy()
            w_out, b_out = dec.out.weight.T.numpy(), dec.out.bias.numpy()
            if not greedy:  # Gumbel-max: the noise of all steps drawn at once
                gumbel = gumbel_noise((B, K, N * L)).numpy()
        state = np.zeros((B, N, d), dtype=np.float32)
        rows = np.arange(B)
        pairs = np.empty((B, K), dtype=np.int64)
        for i in range(K):
            z = (np.maximum(pre[:, i] + state, 0.0) @ w_out + b_out).reshape(B, N * L)
            if not greedy:  # argmax(logits + Gumbel noise) is a draw from softmax(logits)
                z = z + gumbel[:, i]
            pair = z.argmax(-1)
            pairs[:, i] = pair
            state[rows, pair // L] += adds[rows, i, pair]
        order = self.order.numpy()
        out = np.empty((B, 2 * K), dtype=np.int64)
        np.put_along_axis(out[:, :K], order, pairs // L, axis=1)
        np.put_along_axis(out[:, K:], order, pairs % L, axis=1)
        return torch.as_tensor(out)

    def sample(self) -> torch.Tensor:
        return self._decide(greedy=False)

    def mode(self) -> torch.Tensor:
        return self._decide(greedy=True)


class _DeepSetsLayer(nn.Module):
    """``h_k + relu(A h_k + B [mean_j h_j, max_j h_j])``: permutation-equivariant mixing.

    The pooled term is computed once per observation, so a layer costs one ``d x d``
    product per device token.
    """

    def __init__(self, d: int) -> None:
        super().__init__()
        self.local = nn.Linear(d, d)
        self.pooled = nn.Linear(2 * d, d, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([h.mean(-2), h.amax(-2)], -1)
        return h + torch.relu(self.local(h) + self.pooled(pooled).unsqueeze(-2))


class _GridLayer(nn.Module):
    """Exchangeable layer over (device, sub-channel) tokens: ``h + relu(A h + B pool + C pool)``.

    Tokens are (device, sub-channel) pairs; each sees the mean and max over devices of its
    sub-channel and over sub-channels of its device (Hartford et al. 2018, "Deep models
    of interactions across sets"), so the layer is equivariant to permuting devices and
    to permuting sub-channels: "which device is strongest on this sub-channel" and
    "which sub-channel is best for this device" are each one pooling away.
    """

    def __init__(self, d: int) -> None:
        super().__init__()
        self.local = nn.Linear(d, d)
        self.over_devices = nn.Linear(2 * d, d, bias=False)
        self.over_channels = nn.Linear(2 * d, d, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, K, N, d)
        dev = torch.cat([h.mean(-3), h.amax(-3)], -1).unsqueeze(-3)
        ch = torch.cat([h.mean(-2), h.amax(-2)], -1).unsqueeze(-2)
        return h + torch.relu(self.local(h) + self.over_devices(dev) + self.over_channels(ch))


class DeviceNet(nn.Module):
    """Shared per-device encoder, mixing across devices, per-device heads, pooled value.

    ``forward(obs)`` returns ``(logits (B, K*N + K*L), value (B, 1))``; the weights do
    not depend on K (``layout`` only says how to read the observation).
    """

    def __init__(
        self,
        layout: ObservationLayout,
        num_levels: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        mixer: str = "deepsets",
        relative: bool = True,
        head: str = "independent",
    ) -> None:
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, got {mixer!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if head == "autoregressive" and mixer != "grid":
            raise ValueError("head='autoregressive' needs mixer='grid' (sub-channel tokens)")
        self.autoregressive = head == "autoregressive"
        self.layout = layout
        self.num_subchannels = N = int(layout.options["N"])
        self.num_levels = L = int(num_levels)
        F, G, d = layout.device_feature_dim, layout.global_feature_dim, int(d_model)
        has_snr = "snr" in {s.name for s in layout.segments}
        self.grid = mixer == "grid"
        if self.grid and not has_snr:
            raise ValueError(f"mixer='grid' needs an 'snr' segment; layout {layout.spec!r}")
        # relative SNRs need a per-sub-channel "snr" segment
        self.relative = bool(relative) and has_snr and not self.grid
        if self.grid:  # (device, sub-channel) tokens: 4 SNR features + the device's others
            self.embed = nn.Linear(4 + F - N + G, d)
        else:
            self.embed = nn.Linear(F + G + (2 * N if self.relative else 0), d)
        if self.grid:
            self.mix = nn.ModuleList(_GridLayer(d) for _ in range(n_layers))
        elif mixer == "attention":
            self.mix = nn.ModuleList(
                nn.TransformerEncoderLayer(
                    d,
                    n_heads,
                    dim_feedforward=2 * d,
                    dropout=0.0,
                    batch_first=True,
                    norm_first=True,
                )
                for _ in range(n_layers)
            )
        else:
            self.mix = nn.ModuleList(_DeepSetsLayer(d) for _ in range(n_layers))
        if self.autoregressive:
            self.decoder = _AutoregressiveDecoder(d, L)
            heads = ()
        elif self.grid:  # a logit per (device, sub-channel) token; levels from the device's row
            self.head = nn.Linear(d, 1)
            self.level_head = nn.Linear(2 * d, L)
            heads = (self.head, self.level_head)
        else:  # per device: N sub-channel logits, L level logits
            self.head = nn.Linear(d, N + L)
            heads = (self.head,)
        self.value_head = nn.Sequential(nn.Linear(2 * d + G, d), nn.ReLU(), nn.Linear(d, 1))
        for head in heads:  # near-uniform initial policy
            nn.init.zeros_(head.bias)
            head.weight.data.mul_(0.01)

    def trunk(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixed tokens and global features ``(B, G)``.

        Tokens are ``(B, K, d)`` device tokens, or ``(B, K, N, d)`` (device, sub-channel)
        tokens with ``mixer="grid"``.
        """
        g = self.layout.global_features(obs)
        tokens = self._grid_tokens(obs, g) if self.grid else self._device_tokens(obs, g)
        h = torch.relu(self.embed(tokens))
        for layer in self.mix:
            h = layer(h)
        return h, g

    def _device_tokens(self, obs: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x = self.layout.device_features(obs)
        parts = [x, g.unsqueeze(-2).expand(-1, x.shape[-2], -1)]
        if self.relative:  # each device's SNR against the best and the mean device per channel
            snr = self.layout.split(obs)["snr"]
            parts += [snr - snr.amax(-2, keepdim=True), snr - snr.mean(-2, keepdim=True)]
        return torch.cat(parts, -1)

    @staticmethod
    def decision_order(snr: torch.Tensor) -> torch.Tensor:
        """Devices by best full-power SNR, strongest first: ``(B, K)`` device indices."""
        return torch.argsort(snr.amax(-1), dim=1, descending=True, stable=True)

    def _grid_tokens(self, obs: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        parts = self.layout.split(obs)
        snr = parts["snr"]  # (B, K, N)
        B, K, N = snr.shape
        others = [
            parts[s.name].reshape(B, K, s.size // K)
            for s in self.layout.segments
            if s.per_device and s.name != "snr"
        ]
        if self.autoregressive:  # tokens in decision order (the layers are equivariant)
            order = self.decision_order(snr)[..., None]
            snr = snr.gather(1, order.expand(-1, -1, N))
            others = [x.gather(1, order.expand(-1, -1, x.shape[-1])) for x in others]
        per_pair = [
            snr,
            snr - snr.amax(-2, keepdim=True),  # against the best device on the sub-channel
            snr - snr.mean(-2, keepdim=True),
            snr - snr.amax(-1, keepdim=True),  # against the device's best sub-channel
        ]
        return torch.cat(
            [
                torch.stack(per_pair, -1),
                torch.cat([*others, g.unsqueeze(-2).expand(-1, K, -1)], -1)
                .unsqueeze(-2)
                .expand(-1, -1, N, -1),
            ],
            -1,
        )

    def actor(self, h: torch.Tensor, obs: torch.Tensor):
        """Action logits ``(B, K*N + K*L)``; with the autoregressive head, the latent
        ``(tokens, decision order)`` its distribution decodes."""
        B, N = h.shape[0], self.num_subchannels
        if self.autoregressive:  # the tokens are in decision order already
            return h, self.decision_order(self.layout.split(obs)["snr"])
        if self.grid:
            ch = self.head(h).squeeze(-1)  # (B, K, N)
            lv = self.level_head(torch.cat([h.mean(-2), h.amax(-2)], -1))  # (B, K, L)
            return torch.cat([ch.reshape(B, -1), lv.reshape(B, -1)], 1)
        out = self.head(h)
        return torch.cat([out[..., :N].reshape(B, -1), out[..., N:].reshape(B, -1)], 1)

    def critic(self, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if self.grid:
            h = h.flatten(1, 2)
        return self.value_head(torch.cat([h.mean(1), h.amax(1), g], -1))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, g = self.trunk(obs)
        return self.actor(h, obs), self.critic(h, g)

    # SB3's mlp_extractor interface
    def forward_actor(self, obs: torch.Tensor):
        return self.actor(self.trunk(obs)[0], obs)

    def forward_critic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(*self.trunk(obs))


class DevicePolicy(ActorCriticPolicy):
    """Permutation-equivariant SB3 actor-critic over ``MultiDiscrete([N]*K + [L]*K)``.

    Parameters
    ----------
    observation_space, action_space, lr_schedule
        As for any SB3 policy (given by the algorithm).
    layout : ObservationLayout or str
        The env's observation layout or its spec (``"channel-power:K=10,N=4"``).
    d_model : int
        Token width.
    n_layers : int
        Mixing layers.
    n_heads : int
        Attention heads (``mixer="attention"``).
    mixer : {"attention", "deepsets", "grid"}
        Transformer encoder layers or Deep-Sets (mean/max pooling) layers over device
        tokens, or exchangeable layers over (device, sub-channel) tokens.
    head : {"independent", "autoregressive"}
        Every device's sub-channel and level drawn independently given the tokens, or
        devices deciding in turn, strongest first, each seeing earlier choices
        (:class:`DeviceAutoregressiveDistribution`; needs ``mixer="grid"``).
    **kwargs
        Other ``ActorCriticPolicy`` options (``optimizer_class``, ``optimizer_kwargs``).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule,
        layout: ObservationLayout | str | None = None,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        mixer: str = "deepsets",
        relative: bool = True,
        head: str = "independent",
        **kwargs: Any,
    ) -> None:
        self.layout = resolve_layout(layout)
        K = self.layout.num_devices
        if not isinstance(observation_space, spaces.Box) or observation_space.shape != (
            self.layout.size,
        ):
            raise ValueError(
                f"layout {self.layout.spec!r} has {self.layout.size} features but the "
                f"observation space is {observation_space}"
            )
        nvec = getattr(action_space, "nvec", None)
        if (
            not isinstance(action_space, spaces.MultiDiscrete)
            or nvec.shape != (2 * K,)
            or len(set(nvec[:K].tolist())) != 1
            or len(set(nvec[K:].tolist())) != 1
            or int(nvec[0]) != int(self.layout.options["N"])
        ):
            raise ValueError(
                f"DevicePolicy needs action space MultiDiscrete([N]*K + [L]*K) with K={K}, "
                f"N={self.layout.options['N']} (layout {self.layout.spec!r}); got {action_space}"
            )
        self.num_levels = int(nvec[K])
        self.net_arch_kwargs = {
            "d_model": int(d_model),
            "n_layers": int(n_layers),
            "n_heads": int(n_heads),
            "mixer": str(mixer),
            "relative": bool(relative),
            "head": str(head),
        }
        kwargs.setdefault("ortho_init", False)
        for unsupported in ("net_arch", "activation_fn", "features_extractor_class"):
            if kwargs.get(unsupported) is not None:
                raise ValueError(f"DevicePolicy does not take {unsupported}")
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule) -> None:
        K, N = self.layout.num_devices, int(self.layout.options["N"])
        self.mlp_extractor = DeviceNet(self.layout, self.num_levels, **self.net_arch_kwargs)
        if self.mlp_extractor.autoregressive:
            self.action_dist = DeviceAutoregressiveDistribution(K, N, self.num_levels)
            self.action_dist.decoder = self.mlp_extractor.decoder
        else:
            self.action_dist = DeviceActionDistribution(K, N, self.num_levels)
        self.action_net = nn.Identity()
        self.value_net = nn.Identity()
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_action_dist_from_latent(self, latent_pi):
        # the actor's output is the logits, or (tokens, order) for the autoregressive head
        return self.action_dist.proba_distribution(latent_pi)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(layout=self.layout.spec, **self.net_arch_kwargs)
        for key in ("net_arch", "activation_fn", "features_extractor_class"):
            data.pop(key, None)
        return data

    def config(self) -> dict[str, Any]:
        """JSON-able description of the weights (K-free): kind, N, L and the net options."""
        return {
            "kind": self.layout.kind,
            "layout": self.layout.spec,
            "num_levels": self.num_levels,
            **self.net_arch_kwargs,
        }


def policy_for_layout(
    policy: DevicePolicy, layout: ObservationLayout | str, num_levels: int | None = None
) -> DevicePolicy:
    """A copy of ``policy`` (same weights) for another K: reads ``layout``'s observations.

    The layout must have the same kind and the same per-device and global features (same
    N, same QFL options); only K may differ.
    """
    layout = resolve_layout(layout)
    return _build_policy(policy.config(), policy.state_dict(), layout, num_levels)


def _build_policy(
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    layout: ObservationLayout,
    num_levels: int | None = None,
) -> DevicePolicy:
    trained = resolve_layout(config["layout"])
    L = int(config["num_levels"]) if num_levels is None else int(num_levels)
    if (
        trained.kind != layout.kind
        or trained.options != layout.options
        or trained.device_feature_dim != layout.device_feature_dim
        or trained.global_feature_dim != layout.global_feature_dim
        or int(config["num_levels"]) != L
    ):
        raise ValueError(
            f"weights trained on layout {trained.spec!r} with L={config['num_levels']} "
            f"cannot run on layout {layout.spec!r} with L={L}: only K may differ"
        )
    K, N = layout.num_devices, int(layout.options["N"])
    net_kwargs = {k: config[k] for k in ("d_model", "n_layers", "n_heads", "mixer")}
    net_kwargs["relative"] = bool(config.get("relative", False))
    net_kwargs["head"] = str(config.get("head", "independent"))
    policy = DevicePolicy(
        layout.space(),
        spaces.MultiDiscrete([N] * K + [L] * K),
        lambda _: 0.0,
        layout=layout,
        **net_kwargs,
    )
    policy.load_state_dict(state_dict)
    policy.set_training_mode(False)
    return policy


def save_weights(policy: DevicePolicy, path: str | Path) -> Path:
    """Write ``policy``'s weights and configuration (loadable with ``weights_only=True``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}
    torch.save({"format": WEIGHTS_FORMAT, "config": policy.config(), "state_dict": state}, path)
    return path


def load_weights(path: str | Path, layout: ObservationLayout | str | None = None) -> DevicePolicy:
    """A :class:`DevicePolicy` from a weights file or an SB3 model zip, for ``layout``'s K.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_weights` (``.pt``) or by ``PPO(DevicePolicy,
        ...).save()`` (``.zip``). A ``.pt`` file loads with ``weights_only=True`` (no code
        runs); a ``.zip`` is unpickled, which runs code stored in it: load only zips you
        trust.
    layout : ObservationLayout or str, optional
        The layout to run on (any K); default: the one trained on.
    """
    path = Path(path)
    if not path.is_file() and path.with_suffix(".zip").is_file():
        path = path.with_suffix(".zip")
    if not path.is_file():
        raise FileNotFoundError(f"device-policy: no weights file at {str(path)!r}")
    if path.suffix == ".zip":
        config, state_dict = _read_sb3_zip(path)
    else:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(
                f"{path} is not a device-policy weights file ({type(exc).__name__}: {exc})"
            ) from exc
        if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
            raise ValueError(f"{path} is not a device-policy weights file ({WEIGHTS_FORMAT})")
        config, state_dict = blob["config"], blob["state_dict"]
    target = resolve_layout(layout) if layout is not None else resolve_layout(config["layout"])
    return _build_policy(config, state_dict, target)


def _read_sb3_zip(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from stable_baselines3.common.save_util import load_from_zip_file

    try:
        data, params, _ = load_from_zip_file(path, device="cpu", print_system_info=False)
    except Exception as exc:
        raise ValueError(
            f"{path} is not a stable-baselines3 model zip ({type(exc).__name__}: {exc})"
        ) from exc
    kwargs = dict(data.get("policy_kwargs") or {})
    if "layout" not in kwargs or params is None or "policy" not in params:
        raise ValueError(f"{path} does not hold a DevicePolicy (policy_kwargs has no layout)")
    action_space = data["action_space"]
    config = {
        "layout": str(
            kwargs["layout"] if isinstance(kwargs["layout"], str) else kwargs["layout"].spec
        ),
        "num_levels": int(action_space.nvec[-1]),
        "d_model": kwargs.get("d_model", 64),
        "n_layers": kwargs.get("n_layers", 2),
        "n_heads": kwargs.get("n_heads", 4),
        "mixer": kwargs.get("mixer", "deepsets"),
        "relative": kwargs.get("relative", True),
        "head": kwargs.get("head", "independent"),
    }
    return config, params["policy"]


def _repeat(latent, n: int):
    """The actor output of one observation repeated ``n`` times along the batch."""
    if isinstance(latent, tuple):
        return tuple(_repeat(part, n) for part in latent)
    return latent.expand(n, *latent.shape[1:])


def channel_power_view(layout: ObservationLayout) -> ObservationLayout | None:
    """ChannelPower-v0's layout for the same K and N when ``layout`` is QFL-v0's, else None.

    A policy trained on ChannelPower-v0 acts on QFL-v0 through the segments the two
    share (SNRs, last rates, elapsed fraction): :func:`project_observation`.
    """
    if layout.kind != "qfl":
        return None
    from qfl_gym.envs.observation import channel_power_layout

    return channel_power_layout(layout.num_devices, int(layout.options["N"]))


def project_observation(obs: np.ndarray, source: ObservationLayout, target: ObservationLayout):
    """``obs`` of layout ``source`` as an observation of ``target`` (segments by name)."""
    parts = source.split(np.asarray(obs, dtype=np.float32))
    lead = np.shape(obs)[:-1]
    missing = [s.name for s in target.segments if s.name not in parts]
    if missing:
        raise ValueError(f"layout {source.spec!r} has no segments {missing} of {target.spec!r}")
    return np.concatenate([parts[s.name].reshape(*lead, s.size) for s in target.segments], axis=-1)


class DevicePolicyAgent(Agent):
    """A trained :class:`DevicePolicy` acting on any K (``agents.make("device-policy", ...)``).

    Parameters
    ----------
    env : gymnasium.Env
        A ChannelPower-v0 or QFL-v0 env (any K; N and L as in training). Weights trained
        on ChannelPower-v0 also act on QFL-v0 (through the SNR, rate and time segments).
    seed : int, optional
        Seeds sampling when ``deterministic=False``.
    path : str or Path, optional
        Weights (:func:`save_weights`) or an SB3 zip of ``PPO(DevicePolicy, ...)``.
        Without it, the weights of :func:`training_scripts.train.recipe_for_env` for this
        env (its uplink with K <= 10, imitation of local search), trained once and cached
        in ``cache_dir`` (about a minute on 2 cores).
    deterministic : bool
        Most likely action per device (default) or a sample.
    method : {"imitation", "ppo", "imitation+ppo"}
        Recipe used when ``path`` is not given.
    cache_dir : str or Path, optional
        Where recipes' weights are cached (default ``runs/.device-policy-cache``).
    samples : int
        0 (default): the policy's action alone. ``n > 0``: the most likely action and
        ``n`` actions sampled from the policy are scored with ``info["problem"].reward``
        (one vectorized evaluation) and the best is played: a learned proposal checked
        against the model, as optimizers use it (``act`` then needs ``info``).
    """

    name = "device-policy"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        path: str | Path | None = None,
        deterministic: bool = True,
        method: str = "imitation",
        cache_dir: str | Path | None = None,
        samples: int = 0,
    ) -> None:
        self.deterministic = check_bool("deterministic", deterministic)
        self.samples = check_int("samples", samples, low=0)
        layout = layout_of(env)
        if path is None:
            from training_scripts.train import recipe_for_env, train_device_policy

            recipe = recipe_for_env(env, method=method)
            path = train_device_policy(recipe, **({"cache_dir": cache_dir} if cache_dir else {}))
        self.path = Path(path)
        self._source = layout
        self._view = None
        try:
            self.policy = load_weights(path, layout)
        except ValueError:
            view = channel_power_view(layout)
            if view is None:
                raise
            self.policy = load_weights(path, view)
            self._view = view
        nvec = getattr(getattr(env, "action_space", None), "nvec", None)
        if nvec is not None and int(nvec[-1]) != self.policy.num_levels:
            raise ValueError(
                f"weights {str(self.path)!r} choose among {self.policy.num_levels} power "
                f"levels but the env has num_power_levels={int(nvec[-1])}"
            )
        super().__init__(env, seed)

    def _act(self, observation: Any, info: dict[str, Any] | None, stats: dict[str, Any]) -> Any:
        # one observation: torch's intra-op threads only add synchronization (on a busy
        # host a 32-wide linear layer took milliseconds with two threads, microseconds
        # with one)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._decide(observation, info, stats)
        finally:
            torch.set_num_threads(threads)

    def _decide(self, observation: Any, info: dict[str, Any] | None, stats: dict[str, Any]):
        if self._view is not None:
            observation = project_observation(observation, self._source, self._view)
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32)).reshape(1, -1)
        with torch.no_grad():
            logits = self.policy.mlp_extractor.forward_actor(obs)
            dist = self.policy.action_dist.proba_distribution(logits)  # shared object
            mode = dist.mode()
            if self.deterministic and not self.samples:
                return mode[0].numpy().astype(np.int64)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(self.rng.integers(2**31)))
                if not self.samples:
                    return dist.sample()[0].numpy().astype(np.int64)
                draws = dist.proba_distribution(_repeat(logits, self.samples)).sample()
        candidates = torch.cat([mode, draws]).numpy().astype(np.int64)
        problem = problem_from(info)
        K = self.policy.layout.num_devices
        scores = np.asarray(problem.reward(candidates[:, :K], candidates[:, K:]))
        stats["objective_evaluations"] = len(candidates)
        return candidates[int(np.argmax(scores))]
