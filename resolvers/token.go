package resolvers

import (
	"context"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
)

// CreateToken makes a new token, stores its hash and returns the token,
// which is never seen again. orgID is nil only for a SUPPORT token. The
// GraphQL mutation and `crmhub token create` share it.
func CreateToken(ctx context.Context, q *db.Queries, orgID *int64, name string, role auth.Role) (string, *db.APIToken, error) {
	token, hash := auth.NewToken()
	t, err := q.APITokenCreate(ctx, &db.APITokenCreateParams{
		OrgID: orgID, Name: name, Role: string(role), Hash: hash, Prefix: token[:len(auth.TokenPrefix)+4],
	})
	if err != nil {
		return "", nil, err
	}
	return token, t, nil
}
