"""OpenAPI schema scope: only the native EDM API. The send API (`/api/v1/send`, `/api.php`)
keeps its own documentation in the README and has no serializers to describe."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class AppAuthenticationScheme(OpenApiAuthenticationExtension):
    """Tells the schema (and Swagger UI's "Authorize") how api.v1.base.AppAuthentication works."""

    target_class = "api.v1.base.AppAuthentication"
    name = "appBasic"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic",
                "description": "HTTP Basic: the AppID as user name, the AppSecret as password "
                               "(or `appid` and `appsecret` in the request body)."}


def only_native_api(endpoints, **kwargs):
    return [
        (path, regex, method, view) for path, regex, method, view in endpoints
        if path.startswith("/api/v1/") and path != "/api/v1/send" and not path.startswith("/api/v1/send/") and not path.startswith("/api/v1/schema")
        and not path.startswith("/api/v1/docs")
    ]
