"""QAOA for the per-slot channel and power allocation.

Its modules:

- :mod:`agents.qaoa.block`: a block of devices optimized with all others held fixed,
  its exact reward table and its pairwise (second-order) reward model.
- :mod:`agents.qaoa.encoding`: qubits of a block (binary or one-hot with penalty).
- :mod:`agents.qaoa.qubo`: cost functions of a block: ``exact`` diagonal or ``qubo``
  (pairwise model + one-hot penalty), exportable to :mod:`dimod` and PennyLane.
- :mod:`agents.qaoa.simulator`: a fast numpy state-vector QAOA with adjoint gradients.
- :mod:`agents.qaoa.circuit`: the same QAOA as a PennyLane circuit (``qml.qaoa`` layers
  on ``default.qubit`` or ``lightning.qubit``; with noise channels on ``default.mixed``).
- :mod:`agents.qaoa.noise`: noisy QAOA, a numpy density matrix with adjoint gradients.
- :mod:`agents.qaoa.angles`: angle optimization (INTERP, linear ramp, fixed), CVaR.
- :mod:`agents.qaoa.bcd`: block coordinate descent driver shared with the annealing
  baseline.
- :mod:`agents.qaoa.agent`: the ``qaoa`` and ``qaoa-qubo`` agents.

Nothing here imports PennyLane at import time; :mod:`agents.qaoa.circuit` does so
when a PennyLane device is requested.
"""

#: Shots per QAOA block solve by default; also the default budget of the
#: ``random-sampling`` and ``annealing`` baselines (equal-budget comparison).
DEFAULT_SHOTS = 100
