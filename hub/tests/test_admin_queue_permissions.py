"""A schedule names a function the worker runs: only superusers may write schedules or
queue entries, whatever permissions a staff account was given."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django_q.models import Schedule


@pytest.fixture
def staff_with_all_queue_perms(db, client):
    user = User.objects.create_user("ops", password="pw-ops-123456", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="django_q"))
    client.force_login(user)
    return client


def test_staff_cannot_add_or_change_schedules(staff_with_all_queue_perms):
    client = staff_with_all_queue_perms
    before = list(Schedule.objects.values_list("name", "func"))
    assert client.get("/admin/django_q/schedule/add/").status_code == 403
    r = client.post("/admin/django_q/schedule/add/", {"name": "evil", "func": "subprocess.getoutput",
                                                      "args": "'id'", "schedule_type": "O", "repeats": "-1"})
    assert r.status_code == 403
    assert list(Schedule.objects.values_list("name", "func")) == before
    schedule = Schedule.objects.create(name="x", func="hub.tasks.sweep", schedule_type="I", minutes=1)
    r = client.post(f"/admin/django_q/schedule/{schedule.pk}/delete/", {"post": "yes"})
    assert r.status_code == 403 and Schedule.objects.filter(pk=schedule.pk).exists()
    assert client.get("/admin/django_q/schedule/").status_code == 200  # may still look


def test_superuser_can_manage_schedules(admin_client):
    r = admin_client.get("/admin/django_q/schedule/add/")
    assert r.status_code == 200
