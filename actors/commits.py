"""The commit, ack and deny helpers every actor (and the transfer legs) uses.

Every change an actor makes goes through one commit (`runtime.atomic.Commit`, run by commit.lua):
effects, journal events and the stream ack, applied at most once per message id. `Committer`
builds and runs those for a class with `steps`, `keys`, `clock` and `new_id`:

- `_wrap(body, cause)` / `_emit(commit, cause, body, stream=None)`: an event caused by a command,
  on the agent's journal unless another stream is named;
- `_commit(commit, msg_id)`: run it; a refused commit (a `require` check failed) raises
  `CommitRefused`, so the bus redelivers and the handler decides again from fresh state;
  `_try_commit` returns the refusal instead, for a caller that handles a lost race itself;
- `_ack_only(delivery)`: a duplicate or a no-op, just acknowledged (recorded under the id);
- `_deny(delivery, event, commit=None)`: end the command with its `...Refused`/`...Failed` event.
"""

from __future__ import annotations

from messages.base import Message
from messages.envelope import Envelope, IdFactory, wrap
from runtime.atomic import AtomicSteps, Commit, CommitResult
from runtime.bus import Delivery
from runtime.clock import Clock
from runtime.keys import Keys


class CommitRefused(RuntimeError):
    """A commit's `require` check failed: something it relied on moved. Not a refusal of the
    command: the bus retries the delivery, and the handler decides again from the new state."""


class Committer:
    """Mixin of the commit helpers; the class provides `steps`, `keys`, `clock` and `new_id`."""

    steps: AtomicSteps
    keys: Keys
    clock: Clock
    new_id: IdFactory

    def _wrap(self, body: Message, cause: Envelope) -> Envelope:
        """`body` as an event of `cause`'s agent, caused by `cause`, stamped now."""
        return wrap(body, agent=cause.agent, now_ms=self.clock.now_ms(), new_id=self.new_id, cause=cause)

    def _emit(self, commit: Commit, cause: Envelope, body: Message, stream: str | None = None) -> Commit:
        """Add `body` (caused by `cause`) to `commit`, on the agent's journal unless `stream` is given."""
        return commit.emit(stream or self.keys.events(cause.agent), self._wrap(body, cause))

    def _try_commit(self, commit: Commit, msg_id: str, now: int | None = None) -> CommitResult:
        """Run `commit` for message `msg_id` at `now` (default: the clock). Status `ok`; `duplicate`
        when the id was applied before (nothing changed); `refused` when a `require` check failed."""
        return self.steps.commit(commit, msg_id, self.clock.now_ms() if now is None else now)

    def _commit(self, commit: Commit, msg_id: str, now: int | None = None) -> CommitResult:
        """`_try_commit`, raising `CommitRefused` instead of returning a refusal."""
        result = self._try_commit(commit, msg_id, now)
        if result.status == "refused":
            raise CommitRefused(f"commit of {msg_id} refused: {result.reason}")
        return result

    def _ack_only(self, delivery: Delivery, msg_id: str | None = None) -> CommitResult:
        """Acknowledge `delivery` and change nothing else, recorded under `msg_id` (default: its id)."""
        commit = self.steps.new_commit(delivery.envelope.agent).ack(delivery.stream, delivery.group, delivery.entry_id)
        return self._commit(commit, msg_id or delivery.envelope.id)

    def _deny(self, delivery: Delivery, event: Message, commit: Commit | None = None) -> CommitResult:
        """End the command with a refusal or failure: journal `event` (its `...Refused` or
        `...Failed` answer), ack, and commit, together with whatever `commit` already holds
        (releasing a reservation, say)."""
        env = delivery.envelope
        commit = commit if commit is not None else self.steps.new_commit(env.agent)
        self._emit(commit, env, event)
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        return self._commit(commit, env.id)
