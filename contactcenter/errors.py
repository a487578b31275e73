"""The one domain error type, mapped to the API error shape and to websocket error frames."""

from __future__ import annotations


class ApplicationError(Exception):
    """A refused operation: `code` is stable and machine-readable, `message` is for people."""

    status = 400

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None, *, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.status = status

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "fields": self.fields}


class NotFound(ApplicationError):
    def __init__(self, what: str = "object"):
        super().__init__("not_found", f"No such {what}.", status=404)


class PermissionDenied(ApplicationError):
    def __init__(self, message: str = "You are not allowed to do this."):
        super().__init__("forbidden", message, status=403)


class Conflict(ApplicationError):
    def __init__(self, code: str, message: str):
        super().__init__(code, message, status=409)
