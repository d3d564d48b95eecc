"""Permissions for every admin action and ops page, and the two roles that hold them.

Each action that moves money, changes what is paid or reveals collected images has a permission of its own
(bounty.admin, bounty.ops.views); a staff user with only view permissions can look but not act.

Groups (created here; an existing group of the same name keeps its other permissions and gets these):

funder   creates and funds bounties and gets the money back:
         bounty: view, add and change (a draft's terms; a deployed bounty's terms are read-only),
         fund_bounty, refund_bounty, pause_bounty (pause and resume), export_bounty (zip and npz of the
         images), sign_offline (/ops/sign/: refunds and migrations signed with the admin key elsewhere);
         view model versions, slots and transactions, to see what a bounty is locked to and what it spent.
         Not: submissions (contributors' addresses and IPs), approving payouts, activating a model.

reviewer decides what is paid and what the network learns from:
         view submissions and the review queue, approve_payout (approve or decline a held payout),
         retry_payout (a stalled payout sent back to be paid), label_submission (the label actions and the
         true digit in the review queue), view and change collected images (train on or exclude a flagged
         image); view bounties and transactions, to see what a submission claims and how it was paid.
         Not: funding, refunding, pausing or exporting bounties, offline signing, activating a model.

Activating a model version (activate_modelversion) and rolling back (adding a redeployment) belong to no
group: they move every bounty's money to another contract, so only a superuser or someone given them
one by one may do it.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "funder": (
        "bounty.view_bounty",
        "bounty.add_bounty",
        "bounty.change_bounty",
        "bounty.fund_bounty",
        "bounty.refund_bounty",
        "bounty.pause_bounty",
        "bounty.export_bounty",
        "bounty.sign_offline",
        "bounty.view_modelversion",
        "bounty.view_slot",
        "bounty.view_transaction",
    ),
    "reviewer": (
        "bounty.view_submission",
        "bounty.view_reviewitem",
        "bounty.approve_payout",
        "bounty.retry_payout",
        "bounty.label_submission",
        "retraining.view_collectedimage",
        "retraining.change_collectedimage",
        "bounty.view_bounty",
        "bounty.view_transaction",
    ),
}


def make_groups(apps, schema_editor):
    """Create the roles; idempotent, so it can run again on a database whose rows were flushed."""
    # Permissions are otherwise created after the last migration (post_migrate): create them now, for the
    # models as this migration sees them, so a fresh database gets its groups in the same `migrate`.
    for label in ("bounty", "retraining"):
        create_permissions(global_apps.get_app_config(label), verbosity=0, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for dotted in wanted:
            app_label, codename = dotted.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("bounty", "0006_payout_outcomes"),
        ("retraining", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="bounty",
            options={
                "ordering": ("-created",),
                "permissions": (
                    ("fund_bounty", "Can fund and deploy a bounty"),
                    ("refund_bounty", "Can refund a bounty's unused slots"),
                    ("pause_bounty", "Can pause and resume a bounty"),
                    ("export_bounty", "Can export a bounty's collected images"),
                    ("sign_offline", "Can prepare and submit refunds and migrations signed offline"),
                ),
                "verbose_name_plural": "bounties",
            },
        ),
        migrations.AlterModelOptions(
            name="modelversion",
            options={
                "ordering": ("-created",),
                "permissions": (("activate_modelversion", "Can make a model version the active one"),),
            },
        ),
        migrations.AlterModelOptions(
            name="submission",
            options={
                "ordering": ("-received_at",),
                "permissions": (
                    ("approve_payout", "Can approve or decline a held payout"),
                    ("retry_payout", "Can retry a stalled payout"),
                    ("label_submission", "Can label the digit a submission really shows"),
                ),
            },
        ),
        migrations.RunPython(make_groups, remove_groups),
    ]
