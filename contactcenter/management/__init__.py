"""Management commands of the tenancy core."""
