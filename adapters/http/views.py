"""JSON views of stored records, as the REST API returns them."""

from __future__ import annotations

from typing import Any

from broadcaster.ports import DeliveryRecord, StoredAlert


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
        "msg_type": alert.msg_type.value,
        "severity": alert.severity.value,
        "urgency": alert.urgency.value,
        "expires": expires.isoformat() if expires else None,
        "headline": next((i.headline for i in alert.infos if i.headline), None),
        "alert": alert.model_dump(mode="json", exclude_none=True),
        "links": {
            "self": f"{base_url}/v1/alerts/{stored.id}",
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
