"""Alert someone when a flow run fails: a webhook notification block and the policy that uses it.

    python blocks/make_notification_block.py --url https://hooks.example.com/T000/B000/XXXX

Saves the CustomWebhookNotificationBlock ``failure-webhook`` (a POST of JSON
``{"title", "text"}``; Slack-, Teams- and Discord-style incoming webhooks accept it,
or adapt ``json_data``) and what sends it when any flow run ends Failed or Crashed:
a flow-run notification policy on Prefect 2, an automation on Prefect 3. The Prefect
server sends the notifications.
Running it again replaces both. The URL is stored as given; treat a URL with a
token in it as a secret.
"""
from __future__ import annotations

import argparse
import asyncio

from prefect.blocks.notifications import CustomWebhookNotificationBlock

from nyctaxi.resources import NOTIFICATION_BLOCK as BLOCK
from nyctaxi.resources import setting
from nyctaxi.runtime import ALERT_STATES, alert_on_failure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=setting("NOTIFY_WEBHOOK_URL"),
                        help="the webhook to POST to (env NOTIFY_WEBHOOK_URL)")
    args = parser.parse_args()
    if not args.url:
        parser.error("no webhook: pass --url or set NOTIFY_WEBHOOK_URL")
    block = CustomWebhookNotificationBlock(
        name="nyc-taxi-etl", url=args.url, method="POST",
        json_data={"title": "{{subject}}", "text": "{{body}}"},
    )
    block_document_id = block.save(BLOCK, overwrite=True)
    asyncio.run(alert_on_failure(block_document_id))
    print(f"saved {BLOCK!r}: flow runs that end {' or '.join(ALERT_STATES)} are posted to the webhook")


if __name__ == "__main__":
    main()
