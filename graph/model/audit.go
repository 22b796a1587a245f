package model

import "github.com/wedsync/crmhub/db"

// AuditEntryConnection is a page of an organization's audit log.
type AuditEntryConnection struct {
	Edges     []*AuditEntryEdge
	Nodes     []*db.AuditEntry
	PageInfo  *PageInfo
	PageSize  int
	Network   NetworkQuality
	CountFunc CountFunc
}

// AuditEntryEdge is one audit entry with its cursor.
type AuditEntryEdge struct {
	Cursor string
	Node   *db.AuditEntry
}
