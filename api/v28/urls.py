"""`/apinew/<script>.php` and `/mm-ms/apinew/<script>.php`: the same endpoints under both
roots, so a V28 customer only changes the host."""

from django.urls import re_path

from .views import endpoint

# Every script name is routed, so a script we do not implement (task.php, ...) answers the
# API's own XML `unknown_action` rather than the site's HTML 404.
SCRIPTS = r"(?P<script>[A-Za-z0-9_-]{1,40})"

urlpatterns = [
    re_path(rf"^apinew/{SCRIPTS}\.php$", endpoint, name="v28"),
    re_path(rf"^mm-ms/apinew/{SCRIPTS}\.php$", endpoint, name="v28-mm-ms"),
]
