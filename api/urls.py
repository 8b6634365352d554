from django.urls import path

from . import batch, views

urlpatterns = [
    path("api.php", views.CompatSendView.as_view(), name="api-php"),
    path("api/v1/send", views.SendView.as_view(), name="api-send"),
    path("api/v1/send/batch", batch.SendBatchView.as_view(), name="api-send-batch"),
]
