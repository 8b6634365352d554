from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", include("api.urls")),
    path("", include("api.v28.urls")),
    path("api/v1/", include("api.v1.urls")),
    path("", include("api.public.urls")),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    # Browsers ask for /favicon.ico on every page whatever the page declares: answer with the
    # hub's icon (a static file, served by WhiteNoise) instead of a 404 in every log.
    path("favicon.ico", RedirectView.as_view(url=static("hub/favicon.svg"), permanent=True)),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
