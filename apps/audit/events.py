"""Every kind of audit event, with a stable number. Numbers are stored: never change or reuse
one; add new events at the end of their block."""

from enum import IntEnum, unique


@unique
class Event(IntEnum):
    # 100: authentication
    LOGIN_SUCCEEDED = 100
    LOGIN_FAILED = 101
    LOGIN_THROTTLED = 102
    SECOND_FACTOR_SUCCEEDED = 110
    SECOND_FACTOR_FAILED = 111
    BACKUP_CODE_USED = 112
    LOGOUT = 120
    SESSION_EXPIRED = 121
    SESSION_REVOKED = 122
    # 200: credentials
    PASSWORD_CHANGED = 200
    PASSWORD_RESET_REQUESTED = 201
    PASSWORD_RESET_COMPLETED = 202
    SECOND_FACTOR_ENROLLED = 210
    BACKUP_CODES_REGENERATED = 211
    SECOND_FACTOR_RESET_BY_STAFF = 212
    # 300: accounts
    ACCOUNT_CREATED = 300
    ACCOUNT_SUSPENDED = 301
    ACCOUNT_REACTIVATED = 302
    ACCOUNT_UPDATED = 303
    # 400: national directory
    DIRECTORY_IMPORTED = 400
    DIRECTORY_IMPORT_FAILED = 401
    # 500: mail
    MESSAGE_SENT = 500
    MESSAGE_DELIVERED_LOCALLY = 501
    MESSAGE_READ = 502
    ATTACHMENT_DOWNLOADED = 503
    MESSAGE_MOVED = 504
    MESSAGE_DELETED = 505
    FOLDER_CHANGED = 510
    DRAFT_DISCARDED = 511
    MAILBOX_MEMBERSHIP_CHANGED = 512
    DOCUMENT_EXTRACTED = 520
    # 600: federation — trust list
    TRUSTLIST_IMPORTED = 600
    TRUSTLIST_IMPORT_FAILED = 601
    # 620: federation — outbound delivery (one event per recipient status transition)
    DELIVERY_QUEUED = 620
    DELIVERY_DELIVERED = 621
    DELIVERY_DEFERRED = 622
    DELIVERY_FAILED = 623
    DELIVERY_READ = 624
    DELIVERY_REPORT_RECEIVED = 625
    READ_RECEIPT_SENT = 626
    # 660: federation — inbound gateway and ingestion
    INBOUND_ACCEPTED = 660
    INBOUND_INGESTED = 661
    INBOUND_QUARANTINED = 662
    INBOUND_REPLAYED = 663
    INBOUND_REJECTED = 664

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").lower()
