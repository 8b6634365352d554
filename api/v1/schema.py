"""OpenAPI schema scope: only the native EDM API. The send API (`/api/v1/send`, `/api.php`)
keeps its own documentation in the README and has no serializers to describe."""

from __future__ import annotations


def only_native_api(endpoints, **kwargs):
    return [
        (path, regex, method, view) for path, regex, method, view in endpoints
        if path.startswith("/api/v1/") and path != "/api/v1/send" and not path.startswith("/api/v1/schema")
        and not path.startswith("/api/v1/docs")
    ]
