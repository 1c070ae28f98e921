"""The team's forms. They check only what a form can (something was typed, two entries match);
the rules themselves (a real role, a free email, a long enough password) are the services',
so the page and the `users` commands refuse the same things in the same words."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class AddOperatorForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter an email address.")])
    # The page renders it as a select of the three roles; anything else posted gets the service's
    # refusal, which names the three (a SelectField's choices would refuse it in other words).
    role = StringField("Role", default="sender")


class SetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired("Enter a password."), Length(max=256)])
    confirm = PasswordField("New password again", validators=[EqualTo("password", "The two passwords differ.")])


class ChangePasswordForm(SetPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired("Enter your current password.")])
