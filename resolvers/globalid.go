package resolvers

import "github.com/wedsync/crmhub/graph/gid"

// Global ids are opaque to clients: base64url of "Type:rowid". Clients must
// not parse them; the server checks the type on the way in, so a Client id
// cannot be used where an Integration id is expected.
const (
	typeOrganization = "Organization"
	typeIntegration  = "Integration"
	typeClient       = "Client"
	typeAPIToken     = "ApiToken"
	typeImportRun    = "ImportRun"
)

func globalID(typ string, id int64) string { return gid.Encode(typ, id) }

// parseGlobalID returns the type and row id of a global id.
func parseGlobalID(s string) (string, int64, error) {
	typ, id, err := gid.Decode(s)
	if err != nil {
		return "", 0, errBadInput("malformed id")
	}
	return typ, id, nil
}

// parseTypedID returns the row id of a global id that must name a typ.
func parseTypedID(gid, typ string) (int64, error) {
	t, id, err := parseGlobalID(gid)
	if err != nil {
		return 0, err
	}
	if t != typ {
		return 0, errBadInput("id is not a " + typ + " id")
	}
	return id, nil
}

// OrganizationGlobalID is the GraphQL id of an organization, for commands
// that print it.
func OrganizationGlobalID(id int64) string { return globalID(typeOrganization, id) }
