"""Fetching an MMS attachment with the account's credentials, for the dashboard to pass on.

Twilio's media URLs need HTTP Basic auth when the account enforces it, so the browser cannot
load them itself and must never see the token. The app fetches through the Twilio client's own
HTTP session (so TWILIO_API_BASE_URL, timeouts and the open-transaction check apply) and streams
the bytes on. Twilio answers with a redirect to short-lived storage; requests drops the
Authorization header when a redirect leaves the host, so the token goes to Twilio only.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from twilio.rest import Client

from smsdash.twilio.client import RedirectingHttpClient

TWILIO_API_HOST = "api.twilio.com"


class NotTwilioMedia(ValueError):
    """The URL is not one of this account's media URLs: our credentials must not be sent to it."""


def open_media(client: Client, url: str) -> requests.Response:
    """GET `url` (an inbound MediaUrlN) with the account's credentials, streamed; the caller closes it.

    Only this account's media on Twilio's API host is fetched: the URL came in a webhook, and
    sending the token wherever a URL points would hand it to whoever wrote the URL."""
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or parts.hostname != TWILIO_API_HOST
        or f"/Accounts/{client.username}/" not in parts.path
    ):
        raise NotTwilioMedia(url)
    http = client.http_client
    assert isinstance(http, RedirectingHttpClient) and http.session is not None
    http.check_no_transaction("GET", url)
    response: requests.Response = http.session.get(
        http.rewrite(url),
        auth=(client.username, client.password),
        timeout=http.timeout,
        stream=True,
        allow_redirects=True,
    )
    return response
