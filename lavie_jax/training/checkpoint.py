"""Checkpoints in ``WORKDIR/checkpoints``: orbax ``CheckpointManager`` with a ``Composite`` of

* ``state``  — the `TrainState` pytree (restored onto whatever mesh the abstract target carries, so a
  checkpoint saved on 8 devices restores on 1),
* ``data``   — the grain iterator state (one file per host; grain's own orbax handler),
* ``config`` — the run's config as JSON, read back first to refuse resuming a different run.

Saves are asynchronous (device arrays are copied, the write happens in the background).
"""

from __future__ import annotations

import os
import pathlib
import time

import grain
import grain.checkpoint  # noqa: F401  (registers CheckpointSave/CheckpointRestore with orbax)
import jax
import orbax.checkpoint as ocp

ITEMS = ("state", "data", "config")


class Checkpointer:
    def __init__(self, workdir: str | os.PathLike, *, max_to_keep: int):
        if max_to_keep < 1:
            raise ValueError(f"keep_checkpoints={max_to_keep}; expected ≥ 1")
        self.max_to_keep = max_to_keep
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_names=ITEMS,
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def saved_config(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config

    def save(self, step: int, state, data_iterator, config: dict) -> None:
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(data_iterator),
                config=ocp.args.JsonSave(config),
            ),
            force=True,
        )

    def restore(self, step: int, abstract_state, data_iterator):
        """The state laid out like `abstract_state` (ShapeDtypeStructs with shardings); the data
        iterator is restored in place and also returned."""
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=grain.checkpoint.CheckpointRestore(data_iterator),
            ),
        )
        return restored.state, restored.data

    def restore_subtree(self, step: int, target: dict) -> dict:
        """Some fields of the saved state only (e.g. ``{'ema_params': …}`` for export), laid out like
        `target` (ShapeDtypeStructs with shardings); the optimizer moments are never read."""
        restore_args = jax.tree.map(lambda t: ocp.ArrayRestoreArgs(sharding=t.sharding), target)
        args = ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
        return self.manager.restore(step, args=ocp.args.Composite(state=args)).state

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()

    def set_aside(self) -> pathlib.Path:
        """Move the existing checkpoints out of the way (``--config.fresh=True``); nothing is deleted."""
        self.manager.close()
        target = self.directory.with_name(f"checkpoints.old-{time.strftime('%Y%m%d-%H%M%S')}")
        self.directory.rename(target)
        self.__init__(self.directory.parent, max_to_keep=self.max_to_keep)
        return target


def differences(saved: dict, current: dict, keys: tuple[str, ...]) -> list[str]:
    """Dotted config keys whose values differ, as ``key: saved → current`` lines."""

    def get(tree: dict, dotted: str):
        for part in dotted.split("."):
            if not isinstance(tree, dict) or part not in tree:
                return "<absent>"
            tree = tree[part]
        return tree

    lines = []
    for key in keys:
        old, new = get(saved, key), get(current, key)
        if _normalise(old) != _normalise(new):
            lines.append(f"{key}: checkpoint has {old!r}, this run has {new!r}")
    return lines


def _normalise(value):
    """JSON turns tuples into lists; compare them as equal."""
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value
