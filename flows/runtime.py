"""What differs between the Prefect releases the flows run on (2.20, the course's; 3.x), in one place.

The flows and tasks are one code base; where an API they use changed, the difference is here.
"""
from __future__ import annotations

import prefect

PREFECT_MAJOR = int(prefect.__version__.split(".")[0])


def final_state(future, timeout: float | None = None):
    """The final state of a task's future, waiting up to ``timeout`` seconds (None: as long as it
    takes); None if it has not finished by then. Prefect 2's ``wait`` returns the state; 3's
    returns nothing and the future's ``state`` says."""
    state = future.wait(timeout)
    if PREFECT_MAJOR >= 3:
        state = future.state
        return state if state.is_final() else None
    return state
