"""The gateway's audit log: the shared one (``services/common/audit_log.py``), kept here for old imports."""

from services.common.audit_log import RETENTION_DAYS, AuditLog, audit_call, audited, current_caller

__all__ = ["RETENTION_DAYS", "AuditLog", "audit_call", "audited", "current_caller"]
