"""Whether a failed trial is retried (``FailureConfig``), and what the log says about it.

    >>> from pbtlab.config import FailureConfig
    >>> policy = RetryPolicy(FailureConfig(max_failures=1))
    >>> policy.should_retry(num_failures=1, usage_error=False), policy.should_retry(2, False)
    (True, False)
"""

from __future__ import annotations

from pbtlab.config import FailureConfig

__all__ = ["RetryPolicy"]


class RetryPolicy:
    """``max_failures=N`` retries a trial N times (-1: forever); ``fail_fast`` never retries and ends the run.

    A misuse of ``tune.report`` is never retried: running it again cannot help."""

    def __init__(self, config: FailureConfig | None) -> None:
        self.config = config or FailureConfig()

    @property
    def fail_fast(self) -> bool:
        return bool(self.config.fail_fast)

    def should_retry(self, num_failures: int, usage_error: bool) -> bool:
        """``num_failures`` counts the failure being handled."""
        max_failures = self.config.max_failures
        return not usage_error and not self.fail_fast and (max_failures == -1 or num_failures <= max_failures)

    def describe_limit(self) -> str:
        return "unlimited" if self.config.max_failures == -1 else str(self.config.max_failures)
