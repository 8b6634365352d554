from django.urls import path

from . import views

urlpatterns = [
    path("api.php", views.CompatSendView.as_view(), name="api-php"),
    path("api/v1/send", views.SendView.as_view(), name="api-send"),
]
