"""JSON views of stored records, as the REST API returns them."""

from __future__ import annotations

from typing import Any

from alerts.render import pick_info
from alerts.requests import request_form
from broadcaster.planner import is_live
from broadcaster.ports import AlertEventKind, DeliveryRecord, StoredAlert

# What an alert id looks like (`broadcaster.intake.new_id` makes 32 hex digits). Routes take
# only this in `{id}`, so anything else is a 404 before any store is asked: PostgreSQL would
# refuse a NUL, and no stored alert has another form.
ALERT_ID = r"[A-Za-z0-9_-]{1,64}"
ALERT_ROUTE = "/v1/alerts/{id:" + ALERT_ID + "}"


def alert_view(stored: StoredAlert, base_url: str) -> dict[str, Any]:
    """An alert with its bookkeeping: id, state, where it came from, and links."""
    alert = stored.alert
    expires = alert.expires
    return {
        "id": stored.id,
        "state": stored.state.value,
        "source": stored.source,
        "received_at": stored.received_at.isoformat(),
        "channels": list(stored.channels),
        "groups": sorted(alert.groups),
        "status": alert.status.value,
        # False for Exercise, Test, System and Draft: only exercise recipients get it.
        "live": is_live(alert),
        "msg_type": alert.msg_type.value,
        "severity": alert.severity.value,
        "urgency": alert.urgency.value,
        "expires": expires.isoformat() if expires else None,
        "headline": next((i.headline for i in alert.infos if i.headline), None),
        # The rest of what the desk posted, in the same names (alerts.requests.request_form).
        **request_form(alert),
        "template": stored.template,
        "decision": _decision(stored),
        "alert": alert.model_dump(mode="json", exclude_none=True),
        "links": {
            "self": f"{base_url}/v1/alerts/{stored.id}",
            "cap": f"{base_url}/alerts/{stored.id}.cap",
        },
    }


def _decision(stored: StoredAlert) -> dict[str, Any] | None:
    """Who approved or rejected an alert held for approval, when and why."""
    if stored.decided_by is None:
        return None
    at = stored.decided_at
    return {
        "by": stored.decided_by,
        "at": at.isoformat() if at else None,
        "reason": stored.decision_reason,
    }


def public_alert_view(stored: StoredAlert, kind: AlertEventKind, base_url: str) -> dict[str, Any]:
    """What the public stream says about an alert event: no bookkeeping, no recipients, only
    what the public pages show, with links to the page and the CAP."""
    alert = stored.alert
    info = pick_info(alert, None)
    expires = alert.expires
    return {
        "kind": kind.value,
        "id": stored.id,
        "msg_type": alert.msg_type.value,
        "status": alert.status.value,
        "severity": alert.severity.value,
        "urgency": alert.urgency.value,
        "headline": next((i.headline for i in alert.infos if i.headline), None),
        "sent": alert.sent.isoformat(),
        "expires": expires.isoformat() if expires else None,
        "areas": [area.description for area in info.areas] if info else [],
        "links": {
            "page": f"{base_url}/alerts/{stored.id}",
            "cap": f"{base_url}/alerts/{stored.id}.cap",
        },
    }


def delivery_view(record: DeliveryRecord) -> dict[str, Any]:
    """A delivery as the desk sees it: where, to whom, its state and its last error."""
    return {
        "id": record.id,
        "channel": record.channel,
        "recipient": record.recipient,
        "state": record.state.value,
        "attempts": record.attempts,
        "next_attempt_at": record.next_attempt_at.isoformat(),
        "last_error": record.last_error,
        "provider_ref": record.provider_ref,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }
