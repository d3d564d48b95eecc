"""The funders' admin: bounties and model versions, submissions, the review queue, slots, transactions."""

from django.contrib import admin

from bounty.admin import bounties, ledger, submissions  # noqa: F401  (registers the model admins)

admin.site.index_template = "bounty/admin_index.html"
admin.site.site_header = "Digit bounties: funders"
