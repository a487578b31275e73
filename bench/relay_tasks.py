"""The bench's bare floor for the relay: a Celery task that makes only the provider's HTTP POST (bench only).

The worker of `bench/relay_load.py` loads it with `--include bench.relay_tasks`; the product never does.
"""

from __future__ import annotations

import requests
from celery import shared_task

_session = requests.Session()  # one per worker process, kept alive like any well-made client


@shared_task(name="bench.relay.bare_post", ignore_result=True)
def bare_post(url: str, account_sid: str, auth_token: str, to: str, sender: str, body: str) -> int:
    response = _session.post(
        url, data={"To": to, "From": sender, "Body": body}, auth=(account_sid, auth_token), timeout=10
    )
    return response.status_code
