"""WSGI entry point: `gunicorn wsgi:app` and `flask --app wsgi ...` both load the app from here."""

from smsdash import create_app

app = create_app()
