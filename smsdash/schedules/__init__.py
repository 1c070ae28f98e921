"""Scheduled sends: when a message may go out, releasing it when due, and changing or canceling
it before then. The database holds the schedule; Redis only sees a delivery once it is released."""
