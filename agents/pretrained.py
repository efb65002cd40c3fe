"""Shipped DevicePolicy weights, and the agent that picks the ones that fit an env.

The weights live in ``agents/pretrained/`` (package data): ``device-policy-<key>.pt``
(:func:`agents.device_policy.save_weights`; ``<key>`` is the training recipe's key,
``training_scripts.train.DevicePolicyRecipe.key``), the recipe's ``recipe.json`` beside
it as ``device-policy-<key>.json``, and one entry per weights file in ``index.json``
(:class:`PretrainedWeights`: the uplink regime the weights were trained on, how, how to
reproduce them and what they measured).

>>> import agents.pretrained
>>> sorted(w.objective for w in agents.pretrained.available_weights())
['deliveries', 'round-time', 'sum-rate']

Adding weights trained by ``training_scripts.train.train_device_policy`` (a cache folder
``device-policy-<key>/`` holding ``device_policy.pt`` and ``recipe.json``) is one call::

    add_weights("runs/.device-policy-cache/device-policy-<key>/device_policy.pt",
                quality={"env": "qfl_gym/ChannelPower-v0", "preset": "default",
                         "reference": "sca", "ratio": 0.96})

This module reads only JSON: torch is imported when :class:`PretrainedAgent` loads
weights.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.base import Agent
from qfl_gym.validation import check_choice
from qfl_gym.wireless.problem import OBJECTIVES

#: Folder of the shipped weights (package data).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
#: The manifest: one entry per weights file.
INDEX_FILE = "index.json"
INDEX_FORMAT = "qfl-gym-pretrained-index-1"
#: Training methods of ``training_scripts.train.DevicePolicyRecipe``.
METHODS = ("ppo", "imitation", "imitation+ppo")
#: Regime fields compared for the soft preference (closest first).
SOFT_FIELDS = ("sic_residual", "slot_s", "update_bits")
_WEIGHTS_NAME = re.compile(r"device-policy-([0-9a-f]{12})\.pt")
_CACHE_FOLDER = re.compile(r"device-policy-([0-9a-f]{12})")


@dataclass(frozen=True)
class PretrainedWeights:
    """One shipped weights file (an entry of ``agents/pretrained/index.json``).

    Attributes
    ----------
    file : str
        Weights file name in :data:`PRETRAINED_DIR`, ``device-policy-<recipe_key>.pt``.
    method : {"ppo", "imitation", "imitation+ppo"}
        How the base weights were trained (the recipe's method; a fine-tune at
        ``finetuned_devices`` is always PPO).
    teacher : str or None
        Agent imitated (imitation methods), e.g. ``"local-search"``.
    objective : str
        Uplink objective of the training env (its reward): one of
        ``qfl_gym.wireless.problem.OBJECTIVES``.
    num_subchannels, num_power_levels : int
        N and L of the training env (the weights need the same N and L).
    sic_residual : float
        Residual interference fraction after SIC of the training env (0: perfect SIC).
    slot_s : float
        Slot / round period of the training env (s).
    update_bits : float
        Size of a model update (bits; the ``deliveries`` and ``round-time`` objectives).
    trained_on : str
        Env id trained on.
    observation : str
        Observation layout kind the weights read (``"channel-power"`` weights also act on
        QFL-v0 through ``agents.device_policy.channel_power_view``).
    trained_devices : int
        K of the base training.
    finetuned_devices : int
        K of the PPO fine-tune (0: none).
    finetune_steps : int
        Env steps of the fine-tune (0: none).
    recipe_key : str
        Key of the recipe (``DevicePolicyRecipe.key()``); ``train_device_policy`` finds
        the file by it.
    reproduce : str
        The command that retrains the weights (``qfl-gym train --recipe <key>``).
    reproduce_seconds : float or None
        Wall time of that training (s, 2 shared cores), None if not recorded.
    timing : str
        How ``reproduce_seconds`` was measured (its parts).
    quality : dict
        Measured quality, free form, e.g. ``{"env": ..., "preset": "default",
        "reference": "sca", "ratio": 0.96}``. ``ratio`` (mean reward over the
        ``reference`` agent's on the same episodes) breaks ties between weights that
        fit equally well.
    """

    file: str
    method: str
    teacher: str | None
    objective: str
    num_subchannels: int
    num_power_levels: int
    sic_residual: float
    slot_s: float
    update_bits: float
    trained_on: str
    observation: str
    trained_devices: int
    finetuned_devices: int
    finetune_steps: int
    recipe_key: str
    reproduce: str
    reproduce_seconds: float | None
    timing: str = ""
    quality: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("objective", self.objective, OBJECTIVES)
        if not _WEIGHTS_NAME.fullmatch(self.file):
            raise ValueError(f"file must be named device-policy-<12 hex>.pt, got {self.file!r}")

    @property
    def path(self) -> Path:
        """The weights file."""
        return PRETRAINED_DIR / self.file

    def trained(self) -> str:
        """What the weights were trained on, e.g. ``ChannelPower-v0 at K=10, PPO at K=50``."""
        text = f"{self.trained_on.split('/')[-1]} at K={self.trained_devices}"
        if self.finetuned_devices:
            text += f", PPO fine-tune at K={self.finetuned_devices}"
        return text

    def describe(self) -> str:
        """One line: file, method, objective, N, L, SIC residual, what it was trained on."""
        how = self.method + (f" of {self.teacher}" if self.teacher else "")
        return (
            f"{self.file}: {how}, objective {self.objective}, N={self.num_subchannels}, "
            f"L={self.num_power_levels}, SIC residual {self.sic_residual:g}, "
            f"slot {self.slot_s:g} s, update {self.update_bits:g} bits, "
            f"trained on {self.trained()}"
        )


def available_weights(folder: str | Path | None = None) -> list[PretrainedWeights]:
    """The entries of the manifest (``index.json``) of ``folder`` (default: the shipped)."""
    index = Path(folder or PRETRAINED_DIR) / INDEX_FILE
    if not index.is_file():
        return []
    data = json.loads(index.read_text())
    if data.get("format") != INDEX_FORMAT:
        raise ValueError(f"{index} is not a pretrained-weights index ({INDEX_FORMAT})")
    return [PretrainedWeights(**entry) for entry in data["weights"]]


def entry_from_recipe(
    record: dict[str, Any] | str | Path,
    file: str,
    *,
    quality: dict[str, Any] | None = None,
    reproduce: str | None = None,
    reproduce_seconds: float | None = None,
    timing: str | None = None,
) -> PretrainedWeights:
    """The manifest entry of weights ``file`` from its ``recipe.json`` (dict or path).

    Parameters
    ----------
    record : dict or path
        What ``train_device_policy`` writes beside the weights: ``{"recipe": {...},
        "seconds": ...}``.
    file : str
        ``device-policy-<recipe key>.pt``.
    quality : dict, optional
        Measured quality (see :class:`PretrainedWeights`).
    reproduce : str, optional
        The command that retrains them; default: ``qfl-gym train --recipe <key>`` (the
        recipe in the ``.json`` beside the weights).
    reproduce_seconds : float, optional
        Wall time of the whole training (s); default: the record's ``seconds`` (which,
        for a fine-tuned recipe, is the fine-tune alone: pass the total).
    timing : str, optional
        How the time was measured; default: taken from the record.
    """
    if not isinstance(record, dict):
        record = json.loads(Path(record).read_text())
    match = _WEIGHTS_NAME.fullmatch(file)
    if match is None:
        raise ValueError(f"file must be named device-policy-<12 hex>.pt, got {file!r}")
    recipe = record["recipe"]
    uplink = dict(recipe["uplink"])
    method = recipe["method"]
    finetune_steps = int(recipe.get("finetune_steps", 0))
    seconds = record.get("seconds")
    if reproduce is None:
        reproduce = f"qfl-gym train --recipe {match.group(1)}"
    if timing is None:
        part = "PPO fine-tune" if finetune_steps else "training"
        timing = f"recipe.json: {part} {seconds} s" if seconds is not None else ""
    return PretrainedWeights(
        file=file,
        method=method,
        teacher=recipe.get("teacher") if method.startswith("imitation") else None,
        objective=uplink.get("objective", "sum-rate"),
        num_subchannels=int(uplink["num_subchannels"]),
        num_power_levels=int(uplink["num_power_levels"]),
        sic_residual=float(uplink["sic_residual"]),
        slot_s=float(uplink["slot_s"]),
        update_bits=float(uplink["update_bits"]),
        trained_on="qfl_gym/ChannelPower-v0",
        observation="channel-power",
        trained_devices=int(uplink["num_devices"]),
        finetuned_devices=int(recipe.get("finetune_devices", 0)) if finetune_steps else 0,
        finetune_steps=finetune_steps,
        recipe_key=match.group(1),
        reproduce=reproduce,
        reproduce_seconds=seconds if reproduce_seconds is None else reproduce_seconds,
        timing=timing,
        quality=dict(quality or {}),
    )


def write_index(entries: list[PretrainedWeights], folder: str | Path | None = None) -> Path:
    """Write ``index.json`` of ``folder`` (default: the shipped), entries sorted by file."""
    index = Path(folder or PRETRAINED_DIR) / INDEX_FILE
    data = {
        "format": INDEX_FORMAT,
        "weights": [asdict(e) for e in sorted(entries, key=lambda e: e.file)],
    }
    index.write_text(json.dumps(data, indent=2) + "\n")
    return index


def add_weights(
    weights: str | Path,
    *,
    quality: dict[str, Any] | None = None,
    folder: str | Path | None = None,
    **entry_options: Any,
) -> PretrainedWeights:
    """Copy trained weights into ``folder`` (default: the shipped) and index them.

    Parameters
    ----------
    weights : str or Path
        ``device_policy.pt`` in a ``train_device_policy`` cache folder
        ``device-policy-<key>/`` (``recipe.json`` beside it), or a
        ``device-policy-<key>.pt`` with ``device-policy-<key>.json`` beside it.
    quality : dict, optional
        Measured quality (see :class:`PretrainedWeights`).
    folder : str or Path, optional
        Target folder.
    **entry_options
        ``reproduce``, ``reproduce_seconds``, ``timing`` of :func:`entry_from_recipe`.

    Returns
    -------
    PretrainedWeights
        The new entry (replacing one for the same file).
    """
    weights = Path(weights)
    named = _WEIGHTS_NAME.fullmatch(weights.name)
    cached = _CACHE_FOLDER.fullmatch(weights.parent.name)
    if named:
        key, record = named.group(1), weights.with_suffix(".json")
    elif cached and weights.name == "device_policy.pt":
        key, record = cached.group(1), weights.parent / "recipe.json"
    else:
        raise ValueError(
            "weights must be device-policy-<key>/device_policy.pt (a train_device_policy "
            f"cache folder) or device-policy-<key>.pt; got {str(weights)!r}"
        )
    if not weights.is_file() or not record.is_file():
        raise FileNotFoundError(f"need {weights} and its recipe {record}")
    target = Path(folder or PRETRAINED_DIR)
    target.mkdir(parents=True, exist_ok=True)
    file = f"device-policy-{key}.pt"
    entry = entry_from_recipe(record, file, quality=quality, **entry_options)
    if weights.resolve() != (target / file).resolve():
        shutil.copyfile(weights, target / file)
        shutil.copyfile(record, target / f"device-policy-{key}.json")
    others = [e for e in available_weights(target) if e.file != file]
    write_index([*others, entry], target)
    return entry


def env_requirements(env: Any, objective: str | None = None) -> dict[str, Any]:
    """What weights must match for ``env`` (wrappers allowed): kind, K, N, L, regime.

    ``objective`` (default: the env's, see :class:`PretrainedAgent`) replaces the
    objective the weights must have been trained on.
    """
    base = getattr(env, "unwrapped", env)
    config = getattr(base, "config", None)
    layout = getattr(base, "observation_layout", None)
    if config is None or layout is None or not hasattr(config, "num_subchannels"):
        raise ValueError(
            "the pretrained agent needs a qfl_gym ChannelPower-v0 or QFL-v0 env; "
            f"got {type(base).__name__}"
        )
    if objective is None:
        objective = config.objective
        if layout.kind == "qfl" and objective == "sum-rate":
            # what a round counts: the updates that arrive by the deadline, or (every
            # update waited for) the slowest upload
            full = getattr(getattr(base, "scenario", None), "participation", None) == "full"
            objective = "round-time" if full else "deliveries"
    else:
        check_choice("objective", objective, OBJECTIVES)
    return {
        "env": getattr(getattr(base, "spec", None), "id", None) or type(base).__name__,
        "kind": layout.kind,
        "num_devices": int(config.num_devices),
        "num_subchannels": int(config.num_subchannels),
        "num_power_levels": int(config.num_power_levels),
        "objective": objective,
        **{name: float(getattr(config, name)) for name in SOFT_FIELDS},
    }


def mismatches(entry: PretrainedWeights, need: dict[str, Any], method: str | None) -> list[str]:
    """Why ``entry`` does not fit ``need`` (:func:`env_requirements`); empty if it fits."""
    reasons = []
    for name, label in (("num_subchannels", "N"), ("num_power_levels", "L")):
        if getattr(entry, name) != need[name]:
            reasons.append(f"{label}={getattr(entry, name)}, env has {label}={need[name]}")
    if entry.observation not in (need["kind"], "channel-power"):
        reasons.append(f"reads {entry.observation} observations, env is {need['kind']}")
    if entry.objective != need["objective"]:
        reasons.append(f"objective {entry.objective}, wanted {need['objective']}")
    if method is not None and entry.method != method:
        reasons.append(f"method {entry.method}, asked for {method}")
    return reasons


def _preference(entry: PretrainedWeights, need: dict[str, Any]) -> tuple:
    """Sort key among fitting weights: closest regime, closest K, best quality."""
    differ = 0
    spread = 0.0
    for name in SOFT_FIELDS:
        a, b = getattr(entry, name), need[name]
        if abs(a - b) > 1e-12 * max(abs(a), abs(b), 1.0):
            differ += 1
            spread += abs(a - b) / max(abs(a), abs(b))
    ks = [entry.trained_devices] + ([entry.finetuned_devices] if entry.finetuned_devices else [])
    k_gap = min(abs(k - need["num_devices"]) for k in ks)
    ratio = entry.quality.get("ratio")
    return (differ, spread, k_gap, -(ratio if isinstance(ratio, int | float) else 0.0), entry.file)


def select_weights(
    env: Any,
    method: str | None = None,
    objective: str | None = None,
    folder: str | Path | None = None,
) -> PretrainedWeights:
    """The shipped weights that fit ``env`` best (rule: :class:`PretrainedAgent`).

    Raises ``ValueError`` listing every entry and why it does not fit when none does.
    """
    if method is not None:
        check_choice("method", method, METHODS)
    need = env_requirements(env, objective)
    entries = available_weights(folder)
    fitting = [e for e in entries if not mismatches(e, need, method)]
    if fitting:
        return min(fitting, key=lambda e: _preference(e, need))
    listing = "\n".join(
        f"  - {e.describe()}\n    does not fit: {'; '.join(mismatches(e, need, method))}"
        for e in entries
    )
    raise ValueError(
        f"no shipped device-policy weights fit {need['env']} (K={need['num_devices']}, "
        f"N={need['num_subchannels']}, L={need['num_power_levels']}, objective "
        f"{need['objective']}, method {method or 'any'}). Shipped weights "
        f"({Path(folder or PRETRAINED_DIR) / INDEX_FILE}):\n{listing or '  (none)'}\n"
        'agents.make("device-policy", env) trains the recipe for this env '
        "(training_scripts.train.recipe_for_env) and caches it; "
        'agents.make("device-policy", env, path=...) runs weights of your own.'
    )


class PretrainedAgent(Agent):
    """Shipped DevicePolicy weights picked for the env (``agents.make("pretrained", env)``).

    Selection rule, over the entries of ``agents/pretrained/index.json``
    (:func:`available_weights`):

    1. Hard requirements, each a reason listed in the error when nothing fits:

       - the env's N (sub-channels) and L (power levels): the network has N SNR
         features per device and L power logits (K is free: any number of devices);
       - an observation the weights can read: ChannelPower-v0 weights act on
         ChannelPower-v0 and, through ``agents.device_policy.channel_power_view``, on
         QFL-v0;
       - the objective: ``objective`` if given, else the env's uplink objective, except
         on QFL-v0 with the default ``sum-rate``, where the objective is what a round
         counts: ``deliveries`` (updates arriving by the deadline) with
         ``participation="deadline"``, ``round-time`` (the slowest upload) with
         ``participation="full"``;
       - ``method`` if given (the recipe's training method).

    2. Among the weights that fit, in order: the closest regime (fewest of
       ``sic_residual``, ``slot_s``, ``update_bits`` different from the env's, then the
       smallest sum of their relative differences); then the trained K closest to the
       env's K (the base K or the fine-tune K, whichever is closer); then the highest
       recorded ``quality["ratio"]``; then the file name.

    So ``ChannelPower-v0`` ``default`` gets the sum-rate imitation weights trained on
    its own uplink, QFL-v0 ``case-study`` the deliveries weights fine-tuned at K=50, and
    QFL-v0 ``case-study-full`` (full participation, ``round-time``) the round-time
    weights.

    Parameters
    ----------
    env : gymnasium.Env
        ChannelPower-v0 or QFL-v0 (wrappers allowed), any K.
    seed : int, optional
        Seeds sampling (``deterministic=False`` or ``samples > 0``).
    method : {"ppo", "imitation", "imitation+ppo"}, optional
        Only weights trained this way.
    objective : str, optional
        Select weights trained on this objective instead of the env's.
    deterministic : bool
        Most likely action per device (default) or a sample.
    samples : int
        As ``agents.make("device-policy", ..., samples=n)``: the policy's action and
        ``n`` samples scored with ``info["problem"].reward``, the best played.

    Attributes
    ----------
    weights : PretrainedWeights
        The entry picked.
    path : Path
        Its weights file.

    Raises
    ------
    ValueError
        No shipped weights fit: the message lists every entry (file, method,
        objective, N, L, SIC residual, what it was trained on) and why it does not fit.
    """

    name = "pretrained"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        method: str | None = None,
        objective: str | None = None,
        deterministic: bool = True,
        samples: int = 0,
    ) -> None:
        from agents.device_policy import DevicePolicyAgent

        self.weights = select_weights(env, method=method, objective=objective)
        self.path = self.weights.path
        self.policy_agent = DevicePolicyAgent(  # it checks deterministic and samples
            env, seed=seed, path=self.path, deterministic=deterministic, samples=samples
        )
        self.policy = self.policy_agent.policy
        super().__init__(env, seed)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if hasattr(self, "policy_agent"):
            self.policy_agent.reset(seed)

    def _act(self, observation: Any, info: dict[str, Any] | None, stats: dict[str, Any]) -> Any:
        action = self.policy_agent.act(observation, info)
        stats.update(
            {k: v for k, v in self.policy_agent.last_stats.items() if k != "decision_time_s"}
        )
        return action


__all__ = [
    "PretrainedAgent",
    "PretrainedWeights",
    "add_weights",
    "available_weights",
    "entry_from_recipe",
    "select_weights",
    "write_index",
]
