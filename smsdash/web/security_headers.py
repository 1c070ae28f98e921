"""Response headers that make the browser refuse what the dashboard never does.

- No framing (`frame-ancestors 'none'` and, for older browsers, `X-Frame-Options: DENY`): a page
  that frames the dashboard could trick an operator into clicking Send, Retry or Delete.
- No MIME sniffing (`nosniff`), so a contact name in the CSV export or a JSON answer is never
  run as HTML or script.
- `Referrer-Policy: same-origin`: message and contact URLs (ids, search terms) stay on this site.
  Not `no-referrer`: over HTTPS Flask-WTF refuses a form post without a same-origin Referer
  (WTF_CSRF_SSL_STRICT), so that would break every form in production.
- `base-uri`, `object-src` and `form-action` stop injected markup from re-pointing relative URLs,
  loading plugins or posting a form (with its CSRF token) to another site.
- HSTS in production over HTTPS: a browser that has seen the dashboard never tries plain http.
- `script-src 'self'`: only the site's own script files run, so markup that slipped past
  escaping still cannot run a script. The templates have no inline script or event handler (the
  confirmation prompts are `data-confirm`, handled in static/js/dashboard.js), and htmx needs
  no `eval`: the templates use no trigger filters and no `hx-on`.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

CONTENT_SECURITY_POLICY = (
    "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'; form-action 'self'"
)
HSTS = "max-age=31536000"
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(response: Response) -> Response:
    """`after_request` hook; a view that sets one of these headers itself keeps its own."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure and current_app.config["APP_ENV"] == "production":
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
