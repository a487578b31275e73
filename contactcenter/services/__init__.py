"""State changes of the tenancy core, one module per concept; the names callers use are re-exported here.

`team` (tenants, members, invites), `apikeys`, `contacts` (contacts and their identities), `records`
(validated saves). Not re-exported: the lower halves agents.services wraps (tenant_create,
membership_create, membership_invite), which make no agent profile.
"""

from contactcenter.services.apikeys import (
    API_KEY_PREFIX,
    IssuedKey,
    apikey_authenticate,
    apikey_create,
    apikey_revoke,
    apikey_rotate_demo,
)
from contactcenter.services.contacts import (
    contact_create,
    contact_delete,
    contact_identity_add,
    contact_identity_opt_out,
    contact_identity_remove,
    contact_identity_verify,
    contact_update,
    identity_normalise,
)
from contactcenter.services.records import email_normalise, validated_save
from contactcenter.services.team import (
    PLACEHOLDER_USERNAME_PREFIX,
    invite_link,
    membership_invite_resend,
    membership_is_pending,
    membership_is_placeholder,
    membership_remove,
    membership_update,
)

__all__ = [
    "API_KEY_PREFIX",
    "PLACEHOLDER_USERNAME_PREFIX",
    "IssuedKey",
    "apikey_authenticate",
    "apikey_create",
    "apikey_revoke",
    "apikey_rotate_demo",
    "contact_create",
    "contact_delete",
    "contact_identity_add",
    "contact_identity_opt_out",
    "contact_identity_remove",
    "contact_identity_verify",
    "contact_update",
    "email_normalise",
    "identity_normalise",
    "invite_link",
    "membership_invite_resend",
    "membership_is_pending",
    "membership_is_placeholder",
    "membership_remove",
    "membership_update",
    "validated_save",
]
