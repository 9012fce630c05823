"""One exception root for the application; each app derives its own typed errors from it."""


class ApplicationError(Exception):
    """An expected failure a user or an operator can act on; ``message`` is safe to show."""

    def __init__(self, message: str = "", *, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
