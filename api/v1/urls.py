"""The native JSON API under /api/v1/ (the send API's /api/v1/send lives in api/urls.py)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import account

urlpatterns = [
    path("account", account.AccountView.as_view(), name="v1-account"),
    path("account/service", account.ServiceView.as_view(), name="v1-account-service"),
    path("schema/", SpectacularAPIView.as_view(), name="v1-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="v1-schema"), name="v1-docs"),
]
