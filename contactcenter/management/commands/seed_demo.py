"""`manage.py seed_demo`: the demo tenant (created once) and a fresh demo API key on every run."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from contactcenter.wiring.demo import demo_seed, demo_summary


class Command(BaseCommand):
    help = (
        "Creates the demo tenant (slug 'demo') when it is absent, revokes the previous demo API key, "
        "issues a new one, and prints the URLs, the demo sign-ins and the key. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="The server's host for URLs and the widget's origins (default: $HOST).")
        parser.add_argument("--port", type=int, help="The server's port (default: $PORT, else 8000).")

    def handle(self, *args: Any, **options: Any) -> None:
        seed = demo_seed(host=options["host"], port=options["port"])
        self.stdout.write(demo_summary(seed))
