package resolvers

import (
	"strings"

	"github.com/wedsync/crmhub/db"
)

// DisplayName writes a couple's names as a person would: "Emma Clarke &
// James Okafor", "Emma & James Clarke" when they share a last name, or the
// email when there is no name at all.
func DisplayName(c *db.Client) string {
	one := strings.TrimSpace(c.FirstName + " " + c.LastName)
	two := strings.TrimSpace(c.PartnerFirstName + " " + c.PartnerLastName)
	switch {
	case one != "" && two != "" && c.LastName != "" && c.LastName == c.PartnerLastName:
		return c.FirstName + " & " + c.PartnerFirstName + " " + c.LastName
	case one != "" && two != "":
		return one + " & " + two
	case one != "":
		return one
	case two != "":
		return two
	default:
		return c.Email
	}
}
