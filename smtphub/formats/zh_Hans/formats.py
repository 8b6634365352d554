# One way to show a moment in the back office, in every language and on every page (lists,
# detail pages, inlines, audit trail, dashboard): ISO-like, to the second, as the CSV export.
# Only output formats are set here; what a form accepts stays Django's for the language.
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
