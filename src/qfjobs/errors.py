"""The one error hierarchy of qfjobs.

Every error the service raises on purpose is a :class:`QfjobsError`. Each class
carries the snake_case ``code`` that goes into the JSON error body, the HTTP
status the API answers with, and a default message. Job code raises the same
classes; the job runner turns them into the job's ``feedback``.
"""

from typing import Any


class QfjobsError(Exception):
    """Base of all qfjobs errors; also the catch-all ``unknown_error``."""

    code = "unknown_error"
    status = 500
    message = "Unknown error"
    #: ``error_type`` written to a job's feedback when this error fails a job.
    error_type = "UNKNOWN"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.message
        self.details = details
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """HTTP headers the error answer carries."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return body


# ---- request errors (4xx) ------------------------------------------------------


class ValidationError(QfjobsError):
    """Bad request input; ``errors`` names the failing fields."""

    code = "validation_error"
    status = 400
    message = "Validation error"


class EmptyContentError(QfjobsError):
    code = "empty_content"
    status = 400
    message = "The request holds no file"


class InvalidFilenameError(QfjobsError):
    code = "invalid_filename"
    status = 400
    message = "Invalid file name"


class MultipleProjectsError(QfjobsError):
    code = "multiple_projects"
    status = 400
    message = "The project already holds another QGIS project file"


class NoQGISProjectError(QfjobsError):
    code = "no_qgis_project"
    status = 400
    message = "The project does not contain a valid QGIS project file"


class InvalidJobError(QfjobsError):
    code = "invalid_job"
    status = 400
    message = "Invalid job"


class JobNotStoppableError(QfjobsError):
    code = "job_not_stoppable"
    status = 400
    message = "The job has already ended and cannot be stopped"


class InvalidDeltafileError(QfjobsError):
    code = "invalid_deltafile"
    status = 400
    message = "Invalid deltafile"


class NoDeltasToApplyError(QfjobsError):
    code = "no_deltas_to_apply"
    status = 400
    message = "No deltas to apply"


class DeltaStatusNotSettableError(QfjobsError):
    """A delta cannot be set to the asked status from the one it has."""

    code = "delta_status_not_settable"
    status = 400
    message = "These deltas cannot be set to that status"


class DeltasInActiveJobError(QfjobsError):
    """Deltas an active ``delta_apply`` job holds cannot be set by hand."""

    code = "deltas_in_active_job"
    status = 400
    message = "Some deltas are held by an active delta_apply job"


class ProjectAlreadyExistsError(QfjobsError):
    code = "project_already_exists"
    status = 400
    message = "This user already owns a project with the same name"


class NotAuthenticatedError(QfjobsError):
    code = "not_authenticated"
    status = 401
    message = "Authentication credentials were not provided"


class AuthenticationFailedError(QfjobsError):
    code = "authentication_failed"
    status = 401
    message = "Invalid username, password or token"


class PermissionDeniedError(QfjobsError):
    code = "permission_denied"
    status = 403
    message = "Permission denied"


class ObjectNotFoundError(QfjobsError):
    code = "object_not_found"
    status = 404
    message = "Object not found"


class MethodNotAllowedError(QfjobsError):
    code = "method_not_allowed"
    status = 405
    message = "Method not allowed"


class UserAlreadyExistsError(QfjobsError):
    code = "user_already_exists"
    status = 409
    message = "A user with that name already exists"


class PayloadTooLargeError(QfjobsError):
    code = "payload_too_large"
    status = 413
    message = "The request body is too large"


class UnsupportedMediaTypeError(QfjobsError):
    code = "unsupported_media_type"
    status = 415
    message = "Unsupported content type"


class TooManyRequestsError(QfjobsError):
    """Give ``retry_after`` (seconds): it also goes in the Retry-After header."""

    code = "too_many_requests"
    status = 429
    message = "Too many requests, try again later"

    def headers(self) -> dict[str, str]:
        retry_after = self.details.get("retry_after")
        return {"Retry-After": str(retry_after)} if retry_after else {}


# ---- QGIS project and data errors (raised by the domain packages) -------------


class InvalidProjectFileError(QfjobsError):
    """A QGIS project file that cannot be read: bad XML, bad zip, unsafe content."""

    code = "invalid_project_file"
    status = 400
    message = "Invalid QGIS project file"
    error_type = "INVALID_PROJECT_FILE"


class ProjectFileNotFoundError(QfjobsError):
    code = "project_file_not_found"
    status = 400
    message = "The QGIS project file does not exist"
    error_type = "FILE_NOT_FOUND"


class DataSourceError(QfjobsError):
    """A layer's data could not be read or written."""

    code = "data_source_error"
    status = 400
    message = "Data source error"
    error_type = "DATA_SOURCE"


class PackagingError(QfjobsError):
    """A project cannot be packaged as asked (bad area of interest, ...)."""

    code = "packaging_failed"
    status = 400
    message = "The project cannot be packaged"
    error_type = "PACKAGING"


# ---- service-side failures (5xx) ----------------------------------------------


class QueueUnavailableError(QfjobsError):
    code = "queue_unavailable"
    status = 503
    message = "The job queue is unavailable, the job stays pending"
