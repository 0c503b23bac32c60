"""The `broadcaster demo` command: a local service on simulators, ready to try.

Contract:
- `demo_settings(folder, port)` writes `folder/broadcaster.toml` on first use (SQLite in
  `folder`, the SMS, X and Facebook channels pointed at simulators on `port`+1..3, X mentions
  of the simulator's account read every 2 s, no two-person rule) and loads it; an existing
  file is kept, so edits stick.
- `serve_demo(settings, folder, wiring)` creates an issuer and an admin token (audited, actor
  "cli"), prints the addresses, both tokens and an example request, then serves through
  `wiring.demo` until stopped. It never reaches a real provider: the channels' `api_base`
  are the simulators.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from broadcaster.auth import create_token
from broadcaster.config import Settings, load_settings
from broadcaster.ports import Role

if TYPE_CHECKING:  # cli.py imports this module; `Wiring` is only a type here
    from broadcaster.cli import Wiring


_DEMO_CONFIG = """\
# Written by `broadcaster demo`. Edit freely. `broadcaster serve --config {path}` runs it
# without the simulators (sends would then fail: nothing listens at the api_base addresses).
[http]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"

[database]
url = "sqlite:///{db}"

[channels.sms]
# The Twilio simulator started by the demo (never the real Twilio).
account_sid = "AC00000000000000000000000000000000"
auth_token = "demo-auth-token"
from_numbers = ["+15005550006", "+15005550007"]
api_base = "http://127.0.0.1:{sms_port}"
rate_per_second = 10

[channels.x]
# The X API simulator started by the demo (never the real X).
consumer_key = "demo-consumer-key"
consumer_secret = "demo-consumer-secret"
access_token = "demo-access-token"
access_token_secret = "demo-access-token-secret"
api_base = "http://127.0.0.1:{x_port}"
# The simulator's account: mentions of it are read as replies, every 2 s for the demo.
user_id = "1072250532645998596"
poll_seconds = 2

[channels.facebook]
# The Graph API simulator started by the demo (never the real Facebook).
page_id = "102030405060708"
page_token = "EAAsimulatedPageToken0123456789"
api_base = "http://127.0.0.1:{facebook_port}"
rate_per_second = 1

[approval]
# The demo lets one person send every severity; production keeps the two-person rule.
two_person_severities = []
"""


def demo_settings(folder: Path, port: int) -> Settings:
    """Write the demo's config on first use (kept afterwards, so edits stick) and load it."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "broadcaster.toml"
    if not config_path.exists():
        config_path.write_text(
            _DEMO_CONFIG.format(
                path=config_path,
                port=port,
                sms_port=port + 1,
                x_port=port + 2,
                facebook_port=port + 3,
                db=(folder / "broadcaster.db").resolve(),
            )
        )
    return load_settings(config_path)


async def serve_demo(settings: Settings, folder: Path, wiring: Wiring) -> None:
    config_path = folder / "broadcaster.toml"
    store = await wiring.open_store(settings.database.url)
    try:
        issuer, _ = await create_token(
            store, role=Role.ISSUER, name=f"demo-issuer-{secrets.token_hex(2)}", actor="cli"
        )
        admin, _ = await create_token(
            store, role=Role.ADMIN, name=f"demo-admin-{secrets.token_hex(2)}", actor="cli"
        )
    finally:
        await store.close()
    base = settings.http.base_url
    # One line: a backslash-newline inside single quotes would reach the JSON.
    example = json.dumps(
        {
            "event": "Gas leak",
            "headline": "Avoid Market St: gas leak",
            "severity": "Severe",
            "urgency": "Immediate",
            "areas": [
                {
                    "description": "Market St, Manchester",
                    "circle": {"lat": 53.4831, "lon": -2.2392, "radius_km": 1.5},
                }
            ],
        },
        separators=(",", ":"),
    )
    print(
        f"""
broadcaster demo — config {config_path}, data in {folder}/
  public page     {base}/
  Atom feed       {base}/feed.atom   CAP index {base}/cap/index.atom
  live stream     {base}/v1/stream
  responder desk  {base}/responders   (log in with the admin token)
  API (OpenAPI)   {base}/openapi.json
  alerts          {base}/v1/alerts
  health          {base}/healthz   {base}/readyz
  metrics         {base}/metrics
  issuer token    {issuer}
  admin token     {admin}

Send an alert:
  curl -s -X POST {base}/v1/alerts -H 'Authorization: Bearer {issuer}' \\
    -H 'Content-Type: application/json' \\
    -d '{example}'
It appears on the public page at once, is posted to X and the Facebook Page (built-in
simulators), and goes by SMS (to the built-in Twilio simulator, never a real phone) to the
demo subscribers within 1.5 km of Market St, each in their language. Watch the deliveries
move to sent and then delivered (use the id the POST returned):
  curl -s {base}/v1/alerts/ALERT_ID -H 'Authorization: Bearer {admin}'
  curl -s '{base}/v1/alerts/ALERT_ID/deliveries?limit=5' -H 'Authorization: Bearer {admin}'
List alerts:
  curl -s {base}/v1/alerts -H 'Authorization: Bearer {admin}'

The public answers: a few seconds after an alert goes out, simulated residents reply to it
by SMS and on X. Their replies are triaged (SUSPECT, HAZARD, entities) and linked to the
alert; see them in the responder desk, or:
  curl -s '{base}/v1/replies?category=hazard' -H 'Authorization: Bearer {admin}'
Send a tip yourself ({base}/tips has the form):
  curl -s -X POST {base}/v1/replies -H 'Content-Type: application/json' \\
    -d '{{"text":"Smoke coming from the back of 40 Oldham St"}}'
Press Ctrl-C to stop.
""",
        flush=True,
    )
    # Under the CLI's logger, where this line has always been.
    logging.getLogger("broadcaster.cli").info("demo starting")
    await wiring.demo(settings)
