"""The legal changes of a campaign's state (V28 (a)1) and what each means.

What a customer (API) or an operator (admin) may ask for, from each state. Anything else is
refused with `illegal_state` and changes nothing. The dispatcher makes the system's own
changes (start at the send time, completion, pause when out of quota, error)."""

from __future__ import annotations

from .models import State

# Initial states accepted by add-task ((e) #32): 3, 4, -4, -5 are the system's.
CREATE_STATES = frozenset({State.WAITING, State.SCHEDULED, State.SENDING, State.ON_HOLD, State.PAUSED,
                           State.CANCELLED})

NOT_STARTED = frozenset({State.WAITING, State.SCHEDULED, State.ON_HOLD})
FINAL = frozenset({State.DONE, State.STOPPED, State.CANCELLED})

# from -> states a customer may ask for. 0 and 1 both mean "send at the send time";
# 2 means "send now" (start, or resume a paused campaign).
USER_TRANSITIONS: dict[int, frozenset[int]] = {
    State.WAITING: frozenset({State.WAITING, State.SCHEDULED, State.SENDING, State.ON_HOLD, State.CANCELLED}),
    State.SCHEDULED: frozenset({State.WAITING, State.SCHEDULED, State.SENDING, State.ON_HOLD, State.CANCELLED}),
    State.ON_HOLD: frozenset({State.WAITING, State.SCHEDULED, State.SENDING, State.ON_HOLD, State.CANCELLED}),
    State.SENDING: frozenset({State.SENDING, State.PAUSED, State.CANCELLED}),
    State.PAUSED: frozenset({State.PAUSED, State.SENDING, State.CANCELLED}),
    # After an error (template refused, no sender left): fix it, then send again or cancel.
    State.ERROR: frozenset({State.SENDING, State.CANCELLED}),
    State.DONE: frozenset(),
    State.STOPPED: frozenset(),
    State.CANCELLED: frozenset(),
    State.INGESTING: frozenset({State.CANCELLED}),
}


def allowed(current: int, wanted: int) -> bool:
    return wanted in USER_TRANSITIONS.get(current, frozenset())
