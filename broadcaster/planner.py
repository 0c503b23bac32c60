"""The planner: which deliveries an alert makes, and how urgently they are claimed.

Contract:
- `plan(alert, requested)` returns one `PlannedDelivery` per (channel, recipient) the alert
  goes to: over the `requested` channel names, or every configured delivery channel when
  none are named. Repeats are dropped, order is kept (it becomes FIFO order).
- `web` names the whole web channel of the design (`[channels.web]`): the always-on outputs
  (page, feeds, streams) and the signed webhooks, so asking for `web` plans the `webhook`
  channel's receivers too. `webhook` alone names only the receivers.
- `check_requested` refuses a channel name that is neither a configured delivery channel nor
  one of the always-on web outputs, so a desk never believes an alert went somewhere it did
  not. The planner itself never refuses: a channel configured away since a request was
  checked is skipped.
- A Draft (CAP: "not actionable in its current form") plans nothing; nor do Ack and Error
  (messages between systems, not to the public).
- A Cancel plans nothing here: the store sends it to exactly those the cancelled alert
  reached. An Update goes to its own audience, and the store adds those the original reached.
- Test versus live: only an Actual alert is live. Any other (Exercise, Test, System) goes
  only where a channel was configured for exercises: to `channel.exercise_audience(alert)`
  when the channel has that method, to nobody on a channel that has not. So a drill is never
  even planned for a live recipient (channels decide who their exercise recipients are: an
  SMS exercise group, webhook receivers marked for exercises, an X account kept for drills).
- `delivery_priority` orders claims: lower goes first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from alerts.models import SEVERITY_RANK, Alert, MsgType, Severity, Status, Urgency
from broadcaster.errors import PayloadError
from broadcaster.ports import Channel, PlannedDelivery

# Outputs every alert reaches without a delivery row: the public page, feeds and streams
# read the alerts table directly.
WEB_OUTPUTS = frozenset({"web"})
# The delivery channels each web output also stands for: `[channels.web] webhooks` are part
# of the web channel, though the engine sends them as a channel of their own.
_ALSO_PLANNED = {"web": ("webhook",)}
_NOT_BROADCAST = frozenset({MsgType.CANCEL, MsgType.ACK, MsgType.ERROR})
# Statuses that reach live recipients; everything else reaches exercise recipients only.
LIVE_STATUSES = frozenset({Status.ACTUAL})


def is_live(alert: Alert) -> bool:
    """Whether this alert is meant for real: only Actual alerts are."""
    return alert.status in LIVE_STATUSES


def delivery_priority(alert: Alert) -> int:
    """Extreme severity or Immediate urgency first, then by severity (Severe before
    Moderate ...); ties are broken FIFO by the store."""
    urgent = alert.severity is Severity.EXTREME or alert.urgency is Urgency.IMMEDIATE
    return (0 if urgent else 10) + SEVERITY_RANK[alert.severity]


class Planner:
    """Turns an alert into deliveries over the configured channels."""

    def __init__(self, channels: Mapping[str, Channel]) -> None:
        self._channels = dict(channels)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self._channels)

    def check_requested(self, requested: tuple[str, ...]) -> None:
        """Raise PayloadError naming the first requested channel that is not available."""
        for index, name in enumerate(requested):
            if name not in self._channels and name not in WEB_OUTPUTS:
                available = ", ".join(sorted({*self._channels, *WEB_OUTPUTS}))
                raise PayloadError(
                    f"channels.{index}: channel {name!r} is not configured here "
                    f"(available: {available})",
                    code="unknown_channel",
                )

    def plan(self, alert: Alert, requested: tuple[str, ...]) -> tuple[PlannedDelivery, ...]:
        if alert.status is Status.DRAFT or alert.msg_type in _NOT_BROADCAST:
            return ()
        names = (
            tuple(n for name in requested for n in (name, *_ALSO_PLANNED.get(name, ())))
            if requested
            else tuple(self._channels)
        )
        live = is_live(alert)
        planned: dict[tuple[str, str], None] = {}
        for name in names:
            channel = self._channels.get(name)
            if channel is None:
                continue
            if live:
                recipients = channel.audience(alert)
            else:
                exercise_audience: Callable[[Alert], Sequence[str]] | None = getattr(
                    channel, "exercise_audience", None
                )
                recipients = exercise_audience(alert) if exercise_audience is not None else ()
            for recipient in recipients:
                planned.setdefault((name, recipient), None)
        return tuple(PlannedDelivery(channel, recipient) for channel, recipient in planned)
