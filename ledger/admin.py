from django.contrib import admin

from ledger.models import Checkpoint, Entry, Event


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is append-only: the admin shows it and changes nothing."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = [
        "event_id",
        "kind",
        "hospital",
        "subject_type",
        "subject_id",
        "status",
        "recorded_at",
    ]
    list_filter = ["status", "kind", "hospital"]
    search_fields = ["event_id", "subject_id"]
    date_hierarchy = "recorded_at"
    exclude = ["leaf"]


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ["index", "event", "created_at"]
    list_select_related = ["event"]
    exclude = ["leaf", "leaf_hash", "chain_hash"]
    readonly_fields = [
        "index",
        "event",
        "leaf_text",
        "leaf_hash_hex",
        "chain_hash_hex",
        "created_at",
    ]

    @admin.display(description="leaf")
    def leaf_text(self, obj: Entry) -> str:
        return bytes(obj.leaf).decode("ascii", "replace")

    @admin.display(description="leaf hash")
    def leaf_hash_hex(self, obj: Entry) -> str:
        return bytes(obj.leaf_hash).hex()

    @admin.display(description="chain hash")
    def chain_hash_hex(self, obj: Entry) -> str:
        return bytes(obj.chain_hash).hex()


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ["size", "created_at"]
    exclude = ["root_hash"]
    readonly_fields = ["size", "note", "created_at"]
