"""Every action the audit log records, with the words the audit page shows for it.

One list, so the page's filter offers exactly what can be found and a typo in an action name
fails loudly (record() refuses names not listed here) instead of writing an entry nobody can
filter for."""

from __future__ import annotations

from typing import Final

ACTIONS: Final[dict[str, str]] = {
    # messages
    "message.compose": "Sent a message",
    "message.schedule": "Scheduled a message",
    "message.edit": "Edited a scheduled message",
    "message.cancel": "Canceled a scheduled message",
    "message.approve": "Approved a large send",
    "message.reject": "Rejected a large send",
    "delivery.retry": "Retried a delivery",
    "inbox.reply": "Replied to a conversation",
    # contacts, groups, templates, opt-outs
    "contact.create": "Added a contact",
    "contact.edit": "Edited a contact",
    "contact.delete": "Deleted a contact",
    "contact.import": "Imported contacts",
    "group.create": "Added a group",
    "group.edit": "Edited a group",
    "group.delete": "Deleted a group",
    "template.create": "Added a template",
    "template.edit": "Edited a template",
    "template.duplicate": "Duplicated a template",
    "template.archive": "Archived a template",
    "template.restore": "Restored an archived template",
    "optout.add": "Opted a number out",
    "optout.remove": "Opted a number back in",
    # the team
    "operator.create": "Added an operator",
    "operator.role": "Changed an operator's role",
    "operator.deactivate": "Deactivated an operator",
    "operator.reactivate": "Reactivated an operator",
    "operator.password_link": "Made a set-password link",
    "password.set": "Set a password from a link",
    "password.change": "Changed their password",
    "login.success": "Logged in",
    "login.failure": "Failed to log in",
    "logout": "Logged out",
    "permission.denied": "Was refused an action",
}
