"""Saved message templates: a name and a body with placeholders, used to start a compose."""
