package model

import (
	"context"

	"github.com/wedsync/crmhub/db"
)

// CountFunc counts a list's rows; connections call it only when a query
// asks for totalCount, since counting a large list is not free.
type CountFunc func(ctx context.Context) (int, error)

// IntegrationConnection is a page of integrations.
type IntegrationConnection struct {
	Edges     []*IntegrationEdge
	Nodes     []*db.Integration
	PageInfo  *PageInfo
	PageSize  int
	Network   NetworkQuality
	CountFunc CountFunc
}

// IntegrationEdge is one integration with its cursor.
type IntegrationEdge struct {
	Cursor string
	Node   *db.Integration
}

// ClientConnection is a page of clients.
type ClientConnection struct {
	Edges     []*ClientEdge
	Nodes     []*db.Client
	PageInfo  *PageInfo
	PageSize  int
	Network   NetworkQuality
	CountFunc CountFunc
}

// ClientEdge is one client with its cursor.
type ClientEdge struct {
	Cursor string
	Node   *db.Client
}

// APITokenConnection is a page of API tokens.
type APITokenConnection struct {
	Edges     []*APITokenEdge
	Nodes     []*db.APIToken
	PageInfo  *PageInfo
	PageSize  int
	Network   NetworkQuality
	CountFunc CountFunc
}

// APITokenEdge is one token with its cursor.
type APITokenEdge struct {
	Cursor string
	Node   *db.APIToken
}

// ImportRunConnection is a page of import runs.
type ImportRunConnection struct {
	Edges     []*ImportRunEdge
	Nodes     []*db.ImportRun
	PageInfo  *PageInfo
	PageSize  int
	Network   NetworkQuality
	CountFunc CountFunc
}

// ImportRunEdge is one run with its cursor.
type ImportRunEdge struct {
	Cursor string
	Node   *db.ImportRun
}

// ImportRejectConnection is a page of an import's rejects.
type ImportRejectConnection struct {
	Edges     []*ImportRejectEdge
	Nodes     []*db.ImportReject
	PageInfo  *PageInfo
	PageSize  int
	Network   NetworkQuality
	CountFunc CountFunc
}

// ImportRejectEdge is one reject with its cursor.
type ImportRejectEdge struct {
	Cursor string
	Node   *db.ImportReject
}
