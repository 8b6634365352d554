"""Make sure an admin account exists: from HUB_ADMIN_USERNAME / HUB_ADMIN_PASSWORD /
HUB_ADMIN_EMAIL when set, else a generated password printed once. Never changes an
existing account's password."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first admin account if there is none."

    def handle(self, *args, **opts):
        User = get_user_model()
        username = os.environ.get("HUB_ADMIN_USERNAME", "admin")
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("admin account: exists (unchanged)")
            return
        password = os.environ.get("HUB_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username, os.environ.get("HUB_ADMIN_EMAIL", ""), password)
        if os.environ.get("HUB_ADMIN_PASSWORD"):
            self.stdout.write(f"admin account: created {username!r} with the password from HUB_ADMIN_PASSWORD")
        else:
            self.stdout.write(self.style.WARNING(
                f"admin account created -- username: {username}  password: {password}\n"
                "This password is shown only this once; change it after logging in."
            ))
