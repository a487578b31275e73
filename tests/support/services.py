"""pytest plugin for service-backed tests (placeholder until the service plumbing lands)."""
