"""A ``load_state_dict`` that may come before the state it restores exists: held, then applied by ``setup``.

Lightning's ``fit`` restores callbacks after ``setup(stage="fit")`` (``Trainer._run``: ``_call_setup_hook``, then
``_restore_modules_and_callbacks``), so a resumed fit never takes this path. What does take it is
``trainer.validate/test/predict(ckpt_path=...)`` (restored after a ``setup`` of another stage, which the pruning
callbacks skip) and a ``load_state_dict`` called by hand before ``fit``: the state then waits for the next fit's
``setup`` (``tests/test_deferred_state.py`` shows both orders).
"""

from __future__ import annotations

from typing import Any


class DeferredState:
    """Mixin: ``load_state_dict`` applies the state at once when :meth:`_state_built`, else holds it for
    :meth:`_apply_pending_state` (called at the end of ``setup``)."""

    _pending_state: dict[str, Any] | None = None

    def _state_built(self) -> bool:
        """Whether the structures the state is loaded into exist (``setup`` of a fit built them)."""
        raise NotImplementedError

    def _apply_state(self, state_dict: dict[str, Any]) -> None:
        raise NotImplementedError

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._state_built():
            self._apply_state(state_dict)
        else:
            self._pending_state = state_dict

    def _apply_pending_state(self) -> None:
        """Called at the end of ``setup``: a state loaded before it is applied now."""
        state, self._pending_state = self._pending_state, None
        if state is not None:
            self._apply_state(state)
