"""Flask's signed-cookie session, minus the work it does for requests that have no session.

Flask builds an itsdangerous signer on every request just to find that there is no cookie, and
reads seven cookie settings to save an empty session. Twilio's callbacks (the busiest route)
never carry a session, so that is pure overhead there. Behaviour is unchanged: the same cookie,
the same signing, the same `Vary: Cookie` when the session was looked at.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin


class CookieSessionInterface(SecureCookieSessionInterface):
    """SecureCookieSessionInterface that skips the signer when there is nothing to sign or check."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()  # what the parent returns for a missing or empty cookie
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified:  # the parent sets and deletes nothing here either
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)
