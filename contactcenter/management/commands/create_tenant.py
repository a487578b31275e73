"""`manage.py create_tenant`: a new tenant and its first admin, with a password or an invite link."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.services import tenant_setup
from contactcenter.errors import ApplicationError
from contactcenter.services import invite_link


class Command(BaseCommand):
    help = (
        "Creates a tenant and its first admin. Give --password, or answer the prompt, or get a link "
        "the admin opens to choose a password (--invite, or when there is no terminal to prompt on)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="The tenant's name, e.g. 'Acme'.")
        parser.add_argument("--email", required=True, help="The first admin's email (their sign-in name).")
        parser.add_argument("--slug", default="", help="The tenant's short name (default: from --name).")
        how = parser.add_mutually_exclusive_group()
        how.add_argument("--password", help="The admin's password (visible in your shell history).")
        how.add_argument("--invite", action="store_true", help="Print an invite link instead of asking.")

    def handle(self, *args: Any, **options: Any) -> None:
        password: str | None = options["password"]
        if password is None and not options["invite"] and sys.stdin.isatty():
            password = self._prompt_password() or None
        if password is not None:
            try:
                validate_password(password)
            except ValidationError as exc:
                raise CommandError("Password refused: " + " ".join(exc.messages)) from exc
        try:
            membership = tenant_setup(
                name=options["name"], admin_email=options["email"], admin_password=password, slug=options["slug"]
            )
        except ApplicationError as exc:
            details = [m for messages in exc.fields.values() for m in messages if m != exc.message]
            raise CommandError(" ".join([exc.message, *details])) from exc
        tenant = membership.tenant
        self.stdout.write(
            self.style.SUCCESS(
                f"Created tenant {tenant.name!r} (slug {tenant.slug!r}) with admin {membership.user.email}."
            )
        )
        if password is None:
            self.stdout.write("The admin chooses a password here (the link works once and expires):")
            self.stdout.write(invite_link(user=membership.user))

    def _prompt_password(self) -> str:
        password = getpass.getpass("Admin password (leave empty to get an invite link instead): ")
        if password and password != getpass.getpass("Same password again: "):
            raise CommandError("The two passwords differ.")
        return password
