"""A request for the original DICOM withdrawn because its share ended gets its own status.

bdcad00 closed such a request as "declined" with no decider, so it showed as Declined though
nobody declined it. Those rows are told by their audit event (original_request.withdrawn,
whose target is the request): a request declined by someone whose account was deleted later
also has no decider, so an empty decided_by alone would not tell them apart."""

from django.db import migrations, models


def withdrawn_forward(apps, schema_editor):
    OriginalRequest = apps.get_model("sharing", "OriginalRequest")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    withdrawn = AuditEvent.objects.filter(action="original_request.withdrawn").values_list("target_id", flat=True)
    ids = {str(public_id) for public_id in withdrawn}
    rows = OriginalRequest.objects.filter(status="declined", decided_by__isnull=True)
    for req in rows.only("pk", "public_id").iterator():
        if str(req.public_id) in ids:
            OriginalRequest.objects.filter(pk=req.pk).update(status="withdrawn")


def withdrawn_backward(apps, schema_editor):
    OriginalRequest = apps.get_model("sharing", "OriginalRequest")
    OriginalRequest.objects.filter(status="withdrawn").update(status="declined")


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0007_chain_head_trigger"),
        ("sharing", "0009_board_grants_tumor_board"),
    ]

    operations = [
        migrations.AlterField(
            model_name="originalrequest",
            name="status",
            field=models.CharField(
                choices=[("pending", "Waiting for a decision"), ("approved", "Approved"), ("declined", "Declined"),
                         ("withdrawn", "Withdrawn (the share ended)")],
                default="pending", max_length=16),
        ),
        migrations.RunPython(withdrawn_forward, withdrawn_backward),
    ]
