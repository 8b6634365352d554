"""The native JSON API under /api/v1/ (the send API's /api/v1/send lives in api/urls.py)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import (
    account,
    campaigns,
    contacts,
    domains,
    imports,
    schema,  # noqa: F401 (its OpenAPI auth extension registers itself)
    templates,
    webhooks,
)

urlpatterns = [
    path("account", account.AccountView.as_view(), name="v1-account"),
    path("account/service", account.ServiceView.as_view(), name="v1-account-service"),
    path("lists", contacts.ListsView.as_view(), name="v1-lists"),
    path("lists/<int:list_id>", contacts.ListView.as_view(), name="v1-list"),
    path("lists/<int:list_id>/contacts", contacts.ListContactsView.as_view(), name="v1-list-contacts"),
    path("lists/<int:list_id>/contacts/batch", contacts.ListBatchView.as_view(), name="v1-list-batch"),
    path("lists/<int:list_id>/empty", contacts.ListEmptyView.as_view(), name="v1-list-empty"),
    path("lists/<int:list_id>/subscribe", contacts.SubscribeView.as_view(), name="v1-list-subscribe"),
    path("lists/<int:list_id>/unsubscribe", contacts.UnsubscribeView.as_view(), name="v1-list-unsubscribe"),
    path("lists/<int:list_id>/unsubscribed", contacts.UnsubscribedExportView.as_view(), name="v1-list-unsubscribed"),
    path("lists/<int:list_id>/imports", imports.ListImportView.as_view(), name="v1-list-import"),
    path("imports", imports.ImportsView.as_view(), name="v1-imports"),
    path("imports/<int:job_id>", imports.ImportView.as_view(), name="v1-import"),
    path("contacts/<int:contact_id>", contacts.ContactView.as_view(), name="v1-contact"),
    path("templates", templates.TemplatesView.as_view(), name="v1-templates"),
    path("templates/<int:template_id>", templates.TemplateView.as_view(), name="v1-template"),
    path("templates/<int:template_id>/check", templates.TemplateCheckView.as_view(), name="v1-template-check"),
    path("templates/<int:template_id>/attachments", templates.AttachmentsView.as_view(),
         name="v1-template-attachments"),
    path("templates/<int:template_id>/attachments/<int:attachment_id>", templates.AttachmentView.as_view(),
         name="v1-template-attachment"),
    path("campaigns", campaigns.CampaignsView.as_view(), name="v1-campaigns"),
    path("campaigns/<int:campaign_id>", campaigns.CampaignView.as_view(), name="v1-campaign"),
    path("campaigns/<int:campaign_id>/pause", campaigns.PauseView.as_view(), name="v1-campaign-pause"),
    path("campaigns/<int:campaign_id>/resume", campaigns.ResumeView.as_view(), name="v1-campaign-resume"),
    path("campaigns/<int:campaign_id>/cancel", campaigns.CancelView.as_view(), name="v1-campaign-cancel"),
    path("campaigns/<int:campaign_id>/progress", campaigns.ProgressView.as_view(), name="v1-campaign-progress"),
    path("domains", domains.DomainsView.as_view(), name="v1-domains"),
    path("domains/check", domains.DomainsCheckView.as_view(), name="v1-domains-check"),
    path("domains/<int:domain_id>", domains.DomainView.as_view(), name="v1-domain"),
    path("domains/<int:domain_id>/check", domains.DomainCheckView.as_view(), name="v1-domain-check"),
    path("domains/<int:domain_id>/mailboxes", domains.DomainMailboxesView.as_view(), name="v1-domain-mailboxes"),
    path("mailboxes/<int:mailbox_id>", domains.MailboxView.as_view(), name="v1-mailbox"),
    path("webhooks", webhooks.WebhooksView.as_view(), name="v1-webhooks"),
    path("webhooks/<int:webhook_id>", webhooks.WebhookView.as_view(), name="v1-webhook"),
    path("webhooks/<int:webhook_id>/secret", webhooks.SecretView.as_view(), name="v1-webhook-secret"),
    path("webhooks/<int:webhook_id>/events", webhooks.EventsView.as_view(), name="v1-webhook-events"),
    path("webhooks/<int:webhook_id>/attempts", webhooks.AttemptsView.as_view(), name="v1-webhook-attempts"),
    path("webhooks/<int:webhook_id>/resend", webhooks.ResendView.as_view(), name="v1-webhook-resend"),
    path("schema/", SpectacularAPIView.as_view(), name="v1-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="v1-schema"), name="v1-docs"),
]
