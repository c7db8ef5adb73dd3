from django.contrib.admin.apps import AdminConfig


class PortalAdminConfig(AdminConfig):
    # Every admin.py (ours and third-party) registers on the portal's own admin site.
    default_site = "portal.admin_site.PortalAdminSite"
