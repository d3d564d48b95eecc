"""The funders' admin: bounties and model versions, submissions, the review queue, slots, transactions."""

from django.contrib import admin
from django_celery_beat import admin as beat_admin  # noqa: F401  (registers beat's admins, to prune below)
from django_celery_beat.models import ClockedSchedule, SolarSchedule

from bounty.admin import bounties, ledger, submissions  # noqa: F401  (registers the model admins)

admin.site.index_template = "bounty/admin_index.html"
admin.site.site_header = "Digit bounties: funders"

# The service's schedules (from its migrations) are intervals and crontabs; clocked and solar schedules are
# never used here and only cluttered the index.
for unused in (ClockedSchedule, SolarSchedule):
    if admin.site.is_registered(unused):
        admin.site.unregister(unused)
