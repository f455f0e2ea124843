"""Retry policies applied with tenacity: only transient errors, honouring the far side's Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import tenacity

from flows.engine.definition import RetryPolicy
from flows.errors import TransientError

T = TypeVar("T")


def delay_before_next(policy: RetryPolicy, attempt: int, error: BaseException | None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): the far side's Retry-After
    when it gave one, else the policy's interval; never more than the policy's maximum interval (a
    day-long Retry-After would outlive the worker's time limit and the queue's lease on the message)."""
    longest = policy.maximum_interval.total_seconds()
    if isinstance(error, TransientError) and error.retry_after is not None:
        return min(max(0.0, error.retry_after), longest)
    interval = policy.interval.total_seconds()
    if policy.type == "exponential":
        interval *= 2 ** (attempt - 1)
    return min(interval, longest)


OnRetry = Callable[[int, BaseException, float], None]
"""Told of each retry before its wait: the attempt that failed (1-based), its error, the seconds to wait."""


def call_with_retry(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Any],
    on_retry: OnRetry | None = None,
) -> T:
    """Call, retrying transient failures as the policy says; the last error is raised as it is.

    The first attempt is made directly: most calls succeed at once, and building tenacity's
    machinery for every action cost more than many of the actions. Retries, when there are any,
    go through tenacity with the same waits and the same number of attempts in all.
    """
    try:
        return call()
    except TransientError as error:
        if policy.attempts <= 1:
            raise
        delay = delay_before_next(policy, 1, error)
        if on_retry is not None:
            on_retry(1, error, delay)
        sleep(delay)

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return delay_before_next(policy, state.attempt_number + 1, error)  # the first one was made

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_retry is not None and error is not None and state.next_action is not None:
            on_retry(state.attempt_number + 1, error, state.next_action.sleep)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts - 1),
        retry=tenacity.retry_if_exception_type(TransientError),
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(call)
