"""Many independent cells of one scenario, advanced together in batched numpy.

:class:`UplinkChannelBatch` holds ``n`` channels of one
:class:`~qfl_gym.wireless.config.UplinkConfig` and advances all of them with array
operations over a leading cell axis. Each cell ``i`` has its own
``numpy.random.Generator``; it draws exactly the uniforms a single
:class:`~qfl_gym.wireless.channel.UplinkChannel` reset with that generator draws (one
call per reset, one per innovation block of up to ``NOISE_BLOCK_STEPS`` slots), and
the physics is :class:`~qfl_gym.wireless.channel.ChannelModel`, shared with the
single channel. So cell ``i`` reproduces ``UplinkChannel.reset(generator_i)`` followed
by the same number of ``step()`` calls, to floating-point rounding (the single channel
runs the Gauss-Markov recursion of a block as a matrix product, the batch slot by
slot).

Cost per slot and cell: ``2 K N`` float32 uniforms (drawn once per block), their
Box-Muller transform and ``O(K N)`` arithmetic, all in array operations over the
cells. While every cell is at the same point of its block (the usual case: common
resets, a common horizon) a step takes a scalar fast path; small batches of fixed
devices then compute a whole block of gains (and features) at once, so a step is a
view. After partial resets cells are tracked individually, and resynchronize when
their schedules meet again.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from qfl_gym.validation import check_int
from qfl_gym.wireless.channel import NOISE_BLOCK_STEPS, ChannelModel, UplinkChannel
from qfl_gym.wireless.config import UplinkConfig

# cells per tile of the innovation buffer (the largest divisor of n up to this)
_TILE_CELLS = 16
# gains of a whole block (n * L * K * N values) are precomputed up to this size
_BLOCKWISE_MAX_VALUES = 1 << 18


class UplinkChannelBatch:
    """``num_envs`` independent uplink channels of one scenario.

    Parameters
    ----------
    config : UplinkConfig
        The scenario shared by every cell.
    num_envs : int
        Number of cells ``n``.
    num_threads : int
        Threads that draw and transform innovation blocks (default 1: no threads).
        Results do not depend on it.
    features : callable, optional
        ``features(gains) -> ndarray`` of the gains of every slot (elementwise, so it
        may be applied to a block of slots at once); the current slot's value is
        :attr:`features`, shape (n, K, N).

    Attributes
    ----------
    gains : ndarray, shape (n, K, N)
        Current linear power gains of every cell (read-only).
    features : ndarray or None
        ``features(gains)`` of the current slot.
    positions_m : ndarray, shape (n, K, 2)
        Device positions, m.
    distance_m, pathloss_db, shadowing_db : ndarray, shape (n, K)
        Distance (m), path loss (dB) and shadowing (dB) of every device.
    slot : ndarray of int, shape (n,)
        Slots elapsed since each cell's last reset.
    model : ChannelModel
        The physics, shared with :class:`~qfl_gym.wireless.channel.UplinkChannel`.
    """

    def __init__(
        self,
        config: UplinkConfig,
        num_envs: int,
        features: Callable[[np.ndarray], np.ndarray] | None = None,
        num_threads: int = 1,
    ) -> None:
        self.config = config
        self.num_threads = check_int("num_threads", num_threads, low=1)
        self._pool: ThreadPoolExecutor | None = None
        self.model = model = ChannelModel(config)
        self.num_envs = n = int(num_envs)
        K, N = model.shape
        self._feature_fn = features
        self._fading_shape = (n, 2, K, N)
        self._h = np.zeros(self._fading_shape)
        self._los = np.zeros(self._fading_shape) if model.los_amp else None
        self.positions_m = np.zeros((n, K, 2))
        self.heading_rad = np.zeros((n, K))
        self.shadowing_db = np.zeros((n, K))
        self.distance_m = np.zeros((n, K))
        self.pathloss_db = np.zeros((n, K))
        self._beta = np.zeros((n, K, N))  # large-scale gain repeated over sub-channels
        self.gains = np.zeros((n, K, N))
        self.gains.flags.writeable = False
        self.features = None
        # block schedule: scalars while every cell is at the same point ("sync"),
        # per-cell arrays otherwise
        self._sync = True
        self._s_slot = self._s_pos = self._s_len = 0
        self._slot = np.zeros(n, dtype=np.int64)
        self._pos = np.zeros(n, dtype=np.int64)  # next slot of each cell's block
        self._len = np.zeros(n, dtype=np.int64)  # 0: no block yet
        # innovations of the current blocks, float32, in tiles of C cells, slot-major
        # within a tile: (n / C, L, C, 2, pairs). One slot of all cells is n / C
        # contiguous reads, and a tile's block is written while it is in cache.
        self._tile = C = max(c for c in range(1, _TILE_CELLS + 1) if n % c == 0)
        self._tiles = n // C
        self._z = np.zeros((self._tiles, 0, C, 2, model.pairs_per_slot), dtype=np.float32)
        self._zbuf: np.ndarray | None = None  # (n / C, NOISE_BLOCK_STEPS, C, 2, pairs)
        # blockwise mode: gains (and features) of the whole synchronized block at once
        self._blockwise_ok = (
            not model.mobile
            and model.fading_pairs > 0
            and n * NOISE_BLOCK_STEPS * K * N <= _BLOCKWISE_MAX_VALUES
        )
        self._blockwise = False
        self._block_h: np.ndarray | None = None  # (L, n, 2, K, N) fading of each slot
        self._block_gains: np.ndarray | None = None
        self._block_features: np.ndarray | None = None
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._all = np.arange(n)
        self._tile_of, self._lane_of = self._all // C, self._all % C

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="qfl-channel")
        return self._pool

    def close(self) -> None:
        """Stop the worker threads (if any); the batch stays usable."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"] = None  # threads are not copied; a copy starts its own on demand
        return state

    def __deepcopy__(self, memo: dict) -> UplinkChannelBatch:
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__getstate__().items():
            setattr(clone, key, copy.deepcopy(value, memo))
        return clone

    @property
    def slot(self) -> np.ndarray:
        """Slots elapsed since each cell's last reset, (n,)."""
        if self._sync:
            return np.full(self.num_envs, self._s_slot, dtype=np.int64)
        return self._slot.copy()

    # ----------------------------------------------------------------- reset
    def reset(
        self, generators: Sequence[np.random.Generator], indices: np.ndarray | None = None
    ) -> np.ndarray:
        """Reset the cells ``indices`` (all if None) with their generators; return gains.

        ``generators[j]`` is the generator of cell ``indices[j]``; it is kept and used
        for that cell's innovations until its next reset.
        """
        model = self.model
        n = self.num_envs
        idx = self._all if indices is None else np.asarray(indices, dtype=np.int64)
        if len(generators) != len(idx):
            raise ValueError(
                f"generators must hold one generator per reset cell ({len(idx)}), "
                f"got {len(generators)}"
            )
        if len(idx) == 0:
            return self.gains
        whole = len(idx) == n and (indices is None or np.array_equal(idx, self._all))
        u = np.empty((len(idx), model.reset_draws))
        for j, (i, rng) in enumerate(zip(idx.tolist(), generators, strict=True)):
            self._rngs[i] = rng
            rng.random(out=u[j])
        state = model.initial_state(u)
        d, pl, beta = model.large_scale(state.positions_m, state.shadowing_db)
        gains = model.fading_power(state.fading, state.los)
        gains *= beta[..., None]
        if whole:
            self._h = np.ascontiguousarray(state.fading)  # _advance updates it through views
            if state.los is not None:
                self._los = state.los
            self.positions_m = state.positions_m
            self.heading_rad = state.heading_rad
            self.shadowing_db = state.shadowing_db
            self.distance_m, self.pathloss_db = d, pl
            self._beta = np.repeat(beta[..., None], model.shape[1], axis=-1)
            self._sync, self._blockwise = True, False
            self._s_slot = self._s_pos = self._s_len = 0
            new_gains = gains
        else:
            self._desync()
            self._h[idx] = state.fading
            if state.los is not None:
                self._los[idx] = state.los
            self.positions_m[idx] = state.positions_m
            self.heading_rad[idx] = state.heading_rad
            self.shadowing_db[idx] = state.shadowing_db
            self.distance_m[idx] = d
            self.pathloss_db[idx] = pl
            self._beta[idx] = beta[..., None]
            self._slot[idx] = 0
            self._pos[idx] = 0
            self._len[idx] = 0
            new_gains = self.gains.copy()
            new_gains[idx] = gains
        new_gains.flags.writeable = False
        self.gains = new_gains
        if self._feature_fn is not None:
            self.features = self._feature_fn(new_gains)
        return new_gains

    # ------------------------------------------------------------------ step
    def step(self, skip: np.ndarray | None = None) -> np.ndarray:
        """Advance every cell one slot; return the new gains (n, K, N).

        ``skip`` (bool, (n,)) marks cells about to be reset: they draw nothing from
        their generators and their state is left undefined until :meth:`reset`.
        """
        if not self.model.pairs_per_slot:  # static fading, fixed devices: no change
            return self.gains
        if skip is not None and skip.any():
            if skip.all():  # every cell is about to be reset: nothing to compute
                return self.gains
            self._desync()
        elif self._sync:
            return self._step_sync()
        return self._step_cells(skip)

    # -------------------------------------------------------------- internals
    def _step_sync(self) -> np.ndarray:
        """Every cell at the same point of its block: scalar schedule."""
        if self._s_pos == self._s_len:
            length = self.model.block_length(self._s_slot)
            self._draw_blocks(self._all, length)
            self._s_len, self._s_pos = length, 0
            if self._blockwise_ok:
                self._fill_block(length)
        p = self._s_pos
        self._s_pos += 1
        self._s_slot += 1
        if self._blockwise:
            self.gains = self._block_gains[p]
            if self._block_features is not None:
                self.features = self._block_features[p]
            return self.gains
        return self._advance(self._z[:, p])

    def _step_cells(self, skip: np.ndarray | None) -> np.ndarray:
        """Cells at different points of their blocks: per-cell schedule."""
        model = self.model
        pos, length = self._pos, self._len
        need = pos == length
        if skip is not None:
            need &= ~skip
        cells = np.flatnonzero(need)
        if len(cells):
            lengths = np.array([model.block_length(int(s)) for s in self._slot[cells]])
            for value in np.unique(lengths).tolist():
                group = cells[lengths == value]
                self._draw_blocks(group, value)
                length[group] = value
                pos[group] = 0
        z = self._z
        T, C = self._tiles, self._tile
        at = pos
        if skip is not None:  # skipped cells read any valid slot (their result is unused)
            at = np.minimum(np.where(skip, 0, pos), max(z.shape[1] - 1, 0))
        if z.shape[1] == 0:  # no cell has drawn a block yet: all skipped
            zt = np.zeros((T, C, *z.shape[3:]), dtype=z.dtype)
        else:
            zt = z[self._tile_of, at, self._lane_of].reshape(T, C, *z.shape[3:])
        pos += 1
        self._slot += 1
        gains = self._advance(zt)
        slot = self._slot
        if (pos == pos[0]).all() and (length == length[0]).all() and (slot == slot[0]).all():
            # the schedules met again: back to the scalar fast path
            self._sync = True
            self._s_slot, self._s_pos, self._s_len = int(slot[0]), int(pos[0]), int(length[0])
        return gains

    def _advance(self, z: np.ndarray) -> np.ndarray:
        """One Gauss-Markov slot for every cell from innovations z (n / C, C, 2, pairs)."""
        model = self.model
        F = model.fading_pairs
        if F:
            h = self._h
            h *= model.rho
            h_tiles = h.reshape((*z.shape[:3], F))  # a view: h is contiguous
            h_tiles += z[..., :F]
        power = model.fading_power(self._h, self._los)
        if model.mobile:
            mob = z[..., F:].astype(np.float64).reshape(self.num_envs, 2, -1)
            self.positions_m, self.heading_rad, self.shadowing_db = model.move(
                self.positions_m, self.heading_rad, self.shadowing_db, mob[:, 0], mob[:, 1]
            )
            self.distance_m, self.pathloss_db, beta = model.large_scale(
                self.positions_m, self.shadowing_db
            )
            power *= beta[..., None]
        else:
            power *= self._beta
        power.flags.writeable = False
        self.gains = power
        if self._feature_fn is not None:
            self.features = self._feature_fn(power)
        return power

    def _fill_block(self, length: int) -> None:
        """Blockwise mode: fading, gains and features of every slot of the new block."""
        model = self.model
        T, C = self._tiles, self._tile
        F = model.fading_pairs
        H = np.empty((length, *self._fading_shape))
        h = self._h
        for t in range(length):  # the per-slot recursion of _advance, slot by slot
            out = H[t]
            np.multiply(h, model.rho, out=out)
            out_tiles = out.reshape(T, C, 2, F)  # a view: H[t] is contiguous
            out_tiles += self._z[:, t, :, :, :F]
            h = out
        self._h = H[-1]  # the state after the block (a fresh block starts from it)
        power = model.fading_power(H, self._los)
        power *= self._beta
        power.flags.writeable = False
        self._block_h = H
        self._block_gains = power
        self._block_features = None if self._feature_fn is None else self._feature_fn(power)
        self._blockwise = True

    def _desync(self) -> None:
        """Leave the scalar schedule (and blockwise mode) for per-cell tracking."""
        if self._blockwise:
            p = self._s_pos
            # the fading of the last slot produced; a fresh block starts from _h
            self._h = self._block_h[p - 1].copy() if p > 0 else self._h
            self._blockwise = False
            self._block_h = self._block_gains = self._block_features = None
        if self._sync:
            self._slot[:] = self._s_slot
            self._pos[:] = self._s_pos
            self._len[:] = self._s_len
            self._sync = False

    def _draw_blocks(self, cells: np.ndarray, length: int) -> None:
        """Draw the next innovation block (``length`` slots) of ``cells``.

        Each cell's uniforms come from its own generator in one call, exactly as
        :class:`~qfl_gym.wireless.channel.UplinkChannel` draws them; they are transformed
        a tile at a time, while in cache.
        """
        model = self.model
        n, M = self.num_envs, model.pairs_per_slot
        T, C = self._tiles, self._tile
        rngs = self._rngs
        if self._zbuf is None:  # one buffer for the life of the batch (no page faults)
            self._zbuf = np.zeros((T, NOISE_BLOCK_STEPS, C, 2, M), dtype=np.float32)
        if len(cells) == n:  # every cell: tile by tile, while each tile is in cache
            self._z = z = self._zbuf[:, :length]

            def fill(tiles: range) -> None:
                u = np.empty((C, 2, length, M), dtype=np.float32)
                for t in tiles:
                    for j, i in enumerate(range(t * C, (t + 1) * C)):
                        rngs[i].random(out=u[j], dtype=np.float32)
                    model.innovations(u, out=z[t].transpose(1, 2, 0, 3))

            workers = min(self.num_threads, T)
            if workers == 1:
                fill(range(T))
                return
            # disjoint tiles, each cell's own generator: the same result on any thread
            # (numpy's generators and ufuncs release the GIL)
            bounds = np.linspace(0, T, workers + 1).astype(int).tolist()
            jobs = [
                self._executor().submit(fill, range(a, b)) for a, b in itertools.pairwise(bounds)
            ]
            for job in jobs:
                job.result()
            return
        self._z = self._zbuf  # all slots: the other cells keep reading their blocks
        u = np.empty((len(cells), 2, length, M), dtype=np.float32)
        for j, i in enumerate(cells.tolist()):
            rngs[i].random(out=u[j], dtype=np.float32)
        innov = model.innovations(u).transpose(0, 2, 1, 3)  # (g, L, 2, M)
        self._z[cells // C, :length, cells % C] = innov


class SingleCellBatch:
    """One :class:`~qfl_gym.wireless.channel.UplinkChannel` seen as a batch of one cell.

    Gives the single environments the batch interface of :class:`UplinkChannelBatch`
    (``gains`` (1, K, N), ``features``, ``positions_m``, ``reset(generators, indices)``,
    ``step(skip)``) while keeping the single channel's own arithmetic, so code written
    for ``n`` cells runs the single envs as its ``n = 1`` case.
    """

    num_envs = 1

    def __init__(self, channel: UplinkChannel) -> None:
        self.channel = channel
        self.model = channel.model
        self.config = channel.config

    @property
    def gains(self) -> np.ndarray:
        return self.channel.gains[None]

    @property
    def features(self) -> np.ndarray | None:
        f = self.channel.features
        return None if f is None else f[None]

    @property
    def positions_m(self) -> np.ndarray:
        return self.channel.positions_m[None]

    def reset(
        self, generators: Sequence[np.random.Generator], indices: np.ndarray | None = None
    ) -> np.ndarray:
        """Reset the cell with ``generators[0]``; return the gains (1, K, N)."""
        if len(generators) != 1:
            raise ValueError(f"a single cell resets from one generator, got {len(generators)}")
        self.channel.reset(generators[0])
        return self.gains

    def step(self, skip: np.ndarray | None = None) -> np.ndarray:
        """Advance one slot (nothing if ``skip[0]``); return the gains (1, K, N)."""
        if skip is None or not skip[0]:
            self.channel.step()
        return self.gains

    def close(self) -> None:
        """Nothing to stop."""
