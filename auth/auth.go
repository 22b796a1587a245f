// Package auth holds who is calling (the Principal), how API tokens are made
// and checked, and how CRM credentials are sealed at rest.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
)

// Role is what a token may do.
type Role string

// The roles of DESIGN.md "Tenancy and access".
const (
	// RoleOwner may do everything in their organization, including
	// integrations and tokens.
	RoleOwner Role = "OWNER"
	// RoleMember may read and start or cancel imports.
	RoleMember Role = "MEMBER"
	// RoleSupport is crmhub staff: read any organization, retry or cancel any
	// import; never sees CRM credentials.
	RoleSupport Role = "SUPPORT"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	return r == RoleOwner || r == RoleMember || r == RoleSupport
}

// Principal is the caller of a request.
type Principal struct {
	// TokenID is the api_tokens row the caller authenticated with.
	TokenID int64
	// TokenName is the token's label, for logs and the viewer.
	TokenName string
	// OrgID is the caller's organization; 0 for SUPPORT.
	OrgID int64
	Role  Role
}

// CanRead reports whether the principal may read orgID's data.
func (p *Principal) CanRead(orgID int64) bool {
	return p != nil && (p.Role == RoleSupport || p.OrgID == orgID)
}

// CanManage reports whether the principal may change orgID's integrations
// and tokens.
func (p *Principal) CanManage(orgID int64) bool {
	return p != nil && p.Role == RoleOwner && p.OrgID == orgID
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller of ctx, or nil for an anonymous one.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// TokenPrefix starts every crmhub API token, so leaked tokens are easy to
// recognise by secret scanners.
const TokenPrefix = "chub_"

// ErrMalformedToken is returned for a string that cannot be a crmhub token.
var ErrMalformedToken = errors.New("malformed token")

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewToken returns a new random token (160 bits) and its SHA-256 hash, the
// only form that is stored.
func NewToken() (token string, hash []byte) {
	var b [20]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux.
	token = TokenPrefix + strings.ToLower(tokenEncoding.EncodeToString(b[:]))
	return token, HashToken(token)
}

// HashToken returns the SHA-256 of token.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// ParseBearer extracts the token from an Authorization header value
// ("Bearer chub_…").
func ParseBearer(header string) (string, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformedToken
	}
	token = strings.TrimSpace(token)
	if !strings.HasPrefix(token, TokenPrefix) || len(token) > 100 {
		return "", ErrMalformedToken
	}
	return token, nil
}
