"""The shared 6G uplink: scenario configs, propagation, fading and NOMA/SIC rates.

Pure numpy; importing it never imports torch or PennyLane.
"""

from qfl_gym.wireless.channel import UplinkChannel
from qfl_gym.wireless.config import UPLINK_PRESETS, UplinkConfig, uplink_config
from qfl_gym.wireless.problem import AllocationProblem

__all__ = ["UPLINK_PRESETS", "AllocationProblem", "UplinkChannel", "UplinkConfig", "uplink_config"]
