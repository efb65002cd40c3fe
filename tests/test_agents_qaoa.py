"""QAOA agent: blocks, encodings, costs (exact / qubo), simulators, angles, BCD, quality."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from scipy.linalg import expm

import agents
import qfl_gym  # noqa: F401
from agents.classical.heuristics import balanced_strongest
from agents.qaoa.agent import QAOAConfig, solve_block
from agents.qaoa.angles import cvar_objective, interpolate, optimize_angles
from agents.qaoa.bcd import block_coordinate_descent
from agents.qaoa.block import Block
from agents.qaoa.encoding import Encoding
from agents.qaoa.qubo import build_cost, build_qubo
from agents.qaoa.simulator import StateVectorQAOA
from qfl_gym.wireless.problem import AllocationProblem

ENV_ID = "qfl_gym/ChannelPower-v0"


def make_problem(seed: int, **overrides) -> AllocationProblem:
    env = gym.make(ENV_ID, **overrides)
    return env.reset(seed=seed)[1]["problem"]


PRICED = {"energy_weight": 300.0, "outage_penalty": 0.5, "min_rate_bps": 3e6}


# ----------------------------------------------------------------- blocks
@pytest.mark.parametrize("variables", ["joint", "channel", "level"])
@pytest.mark.parametrize(
    "overrides",
    [{}, {"sic_residual": 0.1}, {"sic_residual": 0.05, **PRICED}],
    ids=["perfect-sic", "imperfect-sic", "priced"],
)
def test_block_reward_table_equals_env_reward(variables, overrides):
    p = make_problem(3, num_devices=7, **overrides)
    K, L = p.num_devices, p.num_power_levels
    rng = np.random.default_rng(0)
    channels, levels = rng.integers(0, p.num_subchannels, K), rng.integers(0, L, K)
    block = Block(p, channels, levels, [5, 0, 3], variables)
    tuples = np.arange(block.num_tuples)
    expected = np.asarray(p.reward(*block.assignments(block.tuple_options(tuples))))
    np.testing.assert_allclose(block.reward_table(), expected, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("overrides", [{}, {"sic_residual": 0.1, **PRICED}])
def test_pairwise_model_is_exact_for_two_block_devices(overrides):
    # the second-order Möbius expansion is exact when at most two block devices
    # share a sub-channel, which always holds for a block of two
    p = make_problem(1, num_devices=6, **overrides)
    block = Block(p, balanced_strongest(p.gains), np.full(6, 3), [1, 4], "joint")
    model = block.pairwise_model()
    options = block.tuple_options(np.arange(block.num_tuples))
    np.testing.assert_allclose(model.value(options), block.reward_table(), rtol=1e-10)


def test_block_validates_devices():
    p = make_problem(0, num_devices=4)
    zeros = np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="distinct"):
        Block(p, zeros, zeros, [1, 1])
    with pytest.raises(ValueError, match=r"0\.\.3"):
        Block(p, zeros, zeros, [4])
    with pytest.raises(ValueError, match="variables"):
        Block(p, zeros, zeros, [0], "power")


# --------------------------------------------------------------- encodings
@pytest.mark.parametrize("scheme,M", [("binary", 8), ("one-hot", 5)])
def test_encoding_round_trip(scheme, M):
    enc = Encoding(scheme, 2, M)
    options = np.array([[a, b] for a in range(M) for b in range(M)])
    decoded, violations = enc.decode(enc.encode(options))
    np.testing.assert_array_equal(decoded, options)
    assert not violations.any()


def test_one_hot_repair_takes_best_scored_set_option():
    enc = Encoding("one-hot", 1, 4)
    scores = np.array([[1.0, 5.0, 3.0, 9.0]])
    bits = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 0]])
    options, violations = enc.decode_bits(bits, scores)
    np.testing.assert_array_equal(options[:, 0], [2, 3, 3, 2])
    np.testing.assert_array_equal(violations, [1, 1, 9, 0])


def test_binary_encoding_needs_power_of_two():
    with pytest.raises(ValueError, match="one-hot"):
        Encoding("binary", 2, 6)


# ------------------------------------------------------------------ costs
@pytest.mark.parametrize("seed", range(3))
def test_exact_energies_are_minus_the_reward_of_every_bitstring(seed):
    p = make_problem(seed, num_devices=3, num_subchannels=2, num_power_levels=2, sic_residual=0.1)
    block = Block(p, np.zeros(3, int), np.zeros(3, int), np.arange(3))
    cost = build_cost(block, "exact")  # binary: 6 qubits, every bitstring feasible
    assert cost.num_qubits == 6 and cost.feasible.all()
    enc = cost.encoding
    for x in range(2**cost.num_qubits):
        options, _ = enc.decode(np.array([x]))
        c, lv = block.assignments(options)
        assert cost.energies[x] == pytest.approx(-p.reward(c[0], lv[0]), rel=1e-12)


@pytest.mark.parametrize("mode", ["exact", "qubo"])
@pytest.mark.parametrize("seed", range(4))
def test_every_infeasible_bitstring_scores_worse_than_every_feasible(mode, seed):
    p = make_problem(
        seed,
        num_devices=3,
        num_subchannels=2,
        num_power_levels=2,
        sic_residual=0.05 * seed,
        energy_weight=100.0 * seed,
    )
    block = Block(p, np.zeros(3, int), np.zeros(3, int), np.arange(3))
    cost = build_cost(block, mode, "one-hot")  # 12 qubits, 64 of 4096 feasible
    assert cost.feasible.sum() == 64
    assert cost.energies[~cost.feasible].min() > cost.energies[cost.feasible].max()
    # feasible energies are minus the reward (exact) / minus the pairwise model (qubo)
    feasible = cost.options[cost.feasible]
    target = block.rewards(feasible) if mode == "exact" else block.pairwise_model().value(feasible)
    np.testing.assert_allclose(cost.energies[cost.feasible], -target, rtol=1e-10)


def test_qubo_round_trips_through_dimod():
    import dimod

    p = make_problem(2, num_devices=3, num_subchannels=2, num_power_levels=2, sic_residual=0.1)
    block = Block(p, np.zeros(3, int), np.zeros(3, int), np.arange(3))
    cost = build_cost(block, "qubo")
    qubo = cost.qubo
    bqm = qubo.to_bqm()
    assert bqm.vartype is dimod.BINARY and bqm.num_variables == cost.num_qubits
    sampleset = dimod.ExactSolver().sample(bqm)
    columns = [sampleset.variables.index(label) for label in qubo.labels]
    bits = np.asarray(sampleset.record.sample)[:, columns]
    index = cost.encoding.basis_index(bits)
    np.testing.assert_allclose(sampleset.record.energy, cost.energies[index], rtol=1e-9, atol=1e-9)
    # and the Ising form agrees as well
    h, J, offset = qubo.to_ising()
    z = 1 - 2 * bits.astype(float)
    ising = offset + z @ h + np.einsum("sq,qr,sr->s", z, J, z)
    np.testing.assert_allclose(ising, cost.energies[index], rtol=1e-9, atol=1e-9)


def test_qubo_needs_one_hot():
    p = make_problem(0, num_devices=2)
    block = Block(p, np.zeros(2, int), np.zeros(2, int), [0, 1])
    with pytest.raises(ValueError, match="one-hot"):
        build_cost(block, "qubo", "binary")


def test_automatic_penalty_can_be_overridden():
    p = make_problem(0, num_devices=2, num_subchannels=2, num_power_levels=2)
    block = Block(p, np.zeros(2, int), np.zeros(2, int), [0, 1])
    assert build_qubo(block, penalty=0.5).penalty == 0.5
    with pytest.raises(ValueError, match="penalty"):
        build_qubo(block, penalty=-1.0)


# -------------------------------------------------------------- simulator
def dense_qaoa_state(cost, gammas, betas):
    n = cost.size.bit_length() - 1
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    B = sum(np.kron(np.kron(np.eye(2**q), X), np.eye(2 ** (n - q - 1))) for q in range(n))
    psi = np.full(2**n, 2 ** (-n / 2), dtype=complex)
    for g, b in zip(gammas, betas, strict=True):
        psi = expm(-1j * b * B) @ (np.exp(-1j * g * cost) * psi)
    return psi


@pytest.mark.parametrize("n", [1, 3, 5, 8])
def test_simulator_matches_dense_matrices(n):
    rng = np.random.default_rng(n)
    cost = rng.normal(size=2**n)
    gammas, betas = rng.normal(size=3), rng.normal(size=3)
    psi = StateVectorQAOA(cost).state(gammas, betas)
    np.testing.assert_allclose(psi, dense_qaoa_state(cost, gammas, betas), atol=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_adjoint_gradients_match_finite_differences(alpha):
    rng = np.random.default_rng(7)
    cost = rng.normal(size=2**6)
    sim = StateVectorQAOA(cost)
    objective = cvar_objective(cost, alpha)
    gammas, betas = rng.normal(size=2), rng.normal(size=2)

    def value(g, b):
        probs = sim.probabilities(g, b)
        return probs @ cost if objective is None else objective(probs)[0]

    v, dg, db = sim.value_and_grad(gammas, betas, objective)
    assert v == pytest.approx(value(gammas, betas), abs=1e-12)
    h = 1e-6
    for i in range(2):
        e = np.eye(2)[i] * h
        assert dg[i] == pytest.approx(
            (value(gammas + e, betas) - value(gammas - e, betas)) / (2 * h), abs=1e-5
        )
        assert db[i] == pytest.approx(
            (value(gammas, betas + e) - value(gammas, betas - e)) / (2 * h), abs=1e-5
        )


def test_cvar_of_a_point_mass_and_the_full_distribution():
    cost = np.array([3.0, 1.0, 2.0, 0.0])
    probs = np.full(4, 0.25)
    assert cvar_objective(cost, 0.5)(probs)[0] == pytest.approx(0.5)  # mean of {0, 1}
    assert cvar_objective(cost, 0.25)(probs)[0] == pytest.approx(0.0)
    assert cvar_objective(cost, 1.0) is None  # plain expectation


def test_interp_matches_zhou_et_al():
    np.testing.assert_allclose(interpolate(np.array([1.0])), [1.0, 1.0])
    np.testing.assert_allclose(interpolate(np.array([1.0, 3.0])), [1.0, 2.0, 3.0])
    # p=3 -> 4: [g1, (g1 + 2 g2)/3, (2 g2 + g3)/3, g3]
    np.testing.assert_allclose(
        interpolate(np.array([0.3, 0.6, 0.9])), [0.3, (0.3 + 1.2) / 3, (1.2 + 0.9) / 3, 0.9]
    )


@pytest.mark.slow
@pytest.mark.parametrize("device", ["default.qubit", "lightning.qubit"])
@pytest.mark.parametrize("mode", ["exact", "qubo"])
def test_pennylane_circuit_matches_the_fast_simulator(device, mode):
    from agents.qaoa.agent import make_simulator

    p = make_problem(4, num_devices=3, num_subchannels=2, num_power_levels=2, sic_residual=0.1)
    devices = [0, 2] if mode == "qubo" else [0, 1, 2]  # 8 / 6 qubits
    block = Block(p, np.zeros(3, int), np.zeros(3, int), devices)
    cost = build_cost(block, mode)
    fast, reference = make_simulator(cost, "numpy"), make_simulator(cost, device)
    rng = np.random.default_rng(0)
    for objective in (None, cvar_objective(cost.normalized, 0.3)):
        g, b = rng.normal(size=2), rng.normal(size=2)
        assert reference.expectation(g, b) == pytest.approx(fast.expectation(g, b), abs=1e-6)
        v1, dg1, db1 = fast.value_and_grad(g, b, objective)
        v2, dg2, db2 = reference.value_and_grad(g, b, objective)
        assert v2 == pytest.approx(v1, abs=1e-6)
        np.testing.assert_allclose(dg2, dg1, atol=1e-6)
        np.testing.assert_allclose(db2, db1, atol=1e-6)


# ----------------------------------------------------------------- quality
QUALITY_INSTANCES = [
    (0, {"num_devices": 3}),  # N=4, L=4: 12 qubits binary
    (1, {"num_devices": 3, "sic_residual": 0.1}),
    (2, {"num_devices": 6, "num_subchannels": 2, "num_power_levels": 2}),  # 12 qubits
    (3, {"num_devices": 5, "num_subchannels": 2, "num_power_levels": 2, "sic_residual": 0.05}),
    (4, dict(num_devices=2, num_subchannels=4, num_power_levels=4, **PRICED)),
    (5, {"num_devices": 4, "num_subchannels": 2, "num_power_levels": 2, "sic_residual": 0.2}),
]


def test_qaoa_best_sample_is_near_the_optimum_and_angles_were_optimized():
    ratios = []
    for seed, overrides in QUALITY_INSTANCES:
        env = gym.make(ENV_ID, **overrides)
        obs, info = env.reset(seed=seed)
        problem = info["problem"]
        agent = agents.make("qaoa", env, seed=seed)
        assert agent.layout.single
        channels, levels = env.unwrapped.decode_action(agent.act(obs, info))
        stats = agent.last_stats
        assert stats["qubits"] <= 12 and stats["depth"] == 2 and stats["shots"] == 100
        optimum = agents.make("exhaustive", env).solve(problem, {})
        ratios.append(problem.reward(channels, levels) / problem.reward(*optimum))
        # the optimized state's mean reward beats the uniform superposition's
        assert stats["expected_objective"] > stats["uniform_objective"] + 1e-9
    assert np.mean(ratios) >= 0.97, ratios


def test_optimized_energy_improves_with_depth_and_beats_uniform():
    p = make_problem(8, num_devices=3, sic_residual=0.05)
    block = Block(p, np.zeros(3, int), np.zeros(3, int), np.arange(3))
    sim = StateVectorQAOA(build_cost(block, "exact").normalized)
    result = optimize_angles(sim, 3)
    # normalized cost: the uniform superposition has mean energy 0
    assert result.per_depth[0] < -0.5
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(result.per_depth))
    assert sim.expectation(result.gammas, result.betas) == pytest.approx(result.value)


@pytest.mark.parametrize("init", ["ramp", ((0.5, 1.0), (-0.4, -0.2))])
@pytest.mark.parametrize("optimizer", ["COBYLA", "adam"])
def test_other_initializations_and_optimizers_improve_on_uniform(init, optimizer):
    p = make_problem(9, num_devices=4, num_subchannels=2, num_power_levels=2)
    block = Block(p, np.zeros(4, int), np.zeros(4, int), np.arange(4))
    config = QAOAConfig(init=init, optimizer=optimizer, maxiter=40, cvar_alpha=0.5)
    solution = solve_block(block, config, np.random.default_rng(0))
    values = solution.cost.reward_table[block.tuple_index(solution.cost.options)]
    assert solution.probabilities @ values > values.mean()


def test_fixed_angles_are_used_unchanged_with_maxiter_zero():
    p = make_problem(0, num_devices=2, num_subchannels=2, num_power_levels=2)
    block = Block(p, np.zeros(2, int), np.zeros(2, int), [0, 1])
    config = QAOAConfig(p=1, init=((0.7,), (-0.3,)), maxiter=0)
    solution = solve_block(block, config, np.random.default_rng(0))
    assert solution.angles.gammas.tolist() == [0.7] and solution.angles.betas.tolist() == [-0.3]


# --------------------------------------------------------------- BCD, budget
def test_bcd_never_decreases_the_reward_and_beats_greedy():
    env = gym.make(ENV_ID, num_devices=12, sic_residual=0.05)
    obs, info = env.reset(seed=5)
    problem = info["problem"]
    agent = agents.make("qaoa", env, seed=0, p=1, max_sweeps=2)
    action = agent.act(obs, info)
    stats = agent.last_stats
    assert stats["mode"] == "bcd" and stats["qubits"] == 12
    trace = stats["bcd_trace"]
    assert all(b >= a for a, b in itertools.pairwise(trace))
    greedy = problem.reward(*env.unwrapped.decode_action(agents.make("greedy", env).act(obs, info)))
    assert trace[0] == pytest.approx(greedy)
    assert problem.reward(*env.unwrapped.decode_action(action)) == pytest.approx(trace[-1])


def test_bcd_driver_accepts_only_improvements():
    p = make_problem(2, num_devices=6)
    calls = []

    def worse_solver(block):
        calls.append(block.devices.tolist())
        options = block.incumbent_options()[None]
        return options, block.rewards(options) - 1.0  # claims a worse value

    c0, l0 = balanced_strongest(p.gains), np.full(6, 3)
    result = block_coordinate_descent(
        p,
        worse_solver,
        channels=c0,
        levels=l0,
        block_size=4,
        schedule=("channel", "level"),
        max_sweeps=3,
        rng=np.random.default_rng(0),
    )
    assert result.sweeps == 1 and result.accepted == 0 and len(calls) == 4
    np.testing.assert_array_equal(result.channels, c0)
    assert sorted(calls[0] + calls[1]) == list(range(6))  # one pass covers every device


def test_asking_for_more_qubits_than_the_budget_is_a_clear_error():
    env = gym.make(ENV_ID)  # N = L = 4: 4 qubits per device (binary, joint)
    with pytest.raises(ValueError, match="max_qubits=8"):
        agents.make("qaoa", env, max_qubits=8, block_size=3)
    with pytest.raises(ValueError, match="max_qubits=12"):
        agents.make("qaoa", env, variables="joint", encoding="one-hot")
    with pytest.raises(ValueError, match="max_qubits must be <= 20"):
        agents.make("qaoa", env, max_qubits=30)
    with pytest.raises(
        TypeError, match=r"QAOAAgent.__init__\(\) got an unexpected keyword argument 'depth'"
    ):
        agents.make("qaoa", env, depth=3)
    with pytest.raises(ValueError, match="cvar_alpha"):
        agents.make("qaoa", env, cvar_alpha=0.0)
    with pytest.raises(ValueError, match="device"):
        agents.make("qaoa", env, device="qiskit.aer")


def test_layout_defaults_follow_the_budget():
    env = gym.make(ENV_ID, scenario="case-study")
    assert agents.make("qaoa", env).layout.block_size == 3  # 3 x 4 qubits
    assert agents.make("qaoa", env, max_qubits=16).layout.block_size == 4
    qubo = agents.make("qaoa-qubo", env).layout  # one-hot 16 > 12: alternate passes
    assert qubo.schedule == ("channel", "level") and qubo.block_size == 3


def test_qubo_agent_runs_bcd_and_reports_its_work():
    env = gym.make(ENV_ID, num_devices=5, num_subchannels=2, num_power_levels=2)
    obs, info = env.reset(seed=0)
    agent = agents.make("qaoa-qubo", env, seed=1, p=1, maxiter=20)
    env.unwrapped.codec.validate(agent.act(obs, info))
    stats = agent.last_stats
    assert stats["cost"] == "qubo" and stats["mode"] == "bcd"
    assert stats["qubits"] == 12 and stats["shots"] == 100 * stats["blocks"]
    assert stats["circuit_executions"] > stats["blocks"]
