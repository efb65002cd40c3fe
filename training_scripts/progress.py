"""A rich progress display for rollouts: agent, seed, episode and round."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def rollout_progress(
    enabled: bool = True,
) -> Iterator[Callable[[str, int, int, int], None] | None]:
    """Yield ``update(agent, seed, episode, step)`` that drives a live status line."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task("starting")

        def update(agent: str, seed: int, episode: int, step: int) -> None:
            bar.update(
                task, description=f"agent {agent}  seed {seed}  episode {episode}  round {step}"
            )

        yield update
