from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "portal.tenancy"
    label = "tenancy"
    verbose_name = "Hospitals and staff"

    def ready(self) -> None:
        from django.contrib.auth.models import User

        from ledger import subjects
        from portal.tenancy.models import Membership
        from portal.tenancy.services import (
            GROUP_MEMBER_REMOVED,
            group_member_canonical,
            membership_canonical,
        )

        # Memberships and the group rows they keep in step grant access: verify_ledger
        # accounts for each row through its own events.
        subjects.register(Membership, membership_canonical, removed=("membership.removed",))
        subjects.register(
            User.groups.through, group_member_canonical, removed=(GROUP_MEMBER_REMOVED,)
        )
