package resolvers

import (
	"context"
	"slices"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
)

// feedScope decides which organization (and integration) a run feed
// follows: SUPPORT must name the organization; everyone else gets their own,
// and naming another answers like a missing one.
func (r *subscriptionResolver) feedScope(ctx context.Context, organizationID, integrationID *string) (int64, *int64, error) {
	p, err := principal(ctx)
	if err != nil {
		return 0, nil, err
	}
	orgID := p.OrgID
	if organizationID != nil {
		if orgID, err = parseTypedID(*organizationID, typeOrganization); err != nil {
			return 0, nil, err
		}
	}
	if orgID == 0 {
		return 0, nil, errBadInput("SUPPORT tokens belong to no organization: pass importRunsUpdated(organizationId:)")
	}
	if _, err := readableOrg(ctx, orgID); err != nil {
		return 0, nil, err
	}
	if p.Role == auth.RoleSupport {
		// Support may name any organization, as long as it exists.
		if _, err := r.Queries.OrganizationGetByID(ctx, orgID); err != nil {
			return 0, nil, err
		}
	}
	if integrationID == nil {
		return orgID, nil, nil
	}
	id, err := parseTypedID(*integrationID, typeIntegration)
	if err != nil {
		return 0, nil, err
	}
	if _, err := r.Queries.IntegrationGetByIDAnyOrgIncludingDeleted(ctx, orgID, id); err != nil {
		return 0, nil, err
	}
	return orgID, &id, nil
}

// streamProgress is a subscription's goroutine, as gqlgen's recipe has it:
// it owns ch and closes it, every send waits on ctx too, and it unregisters
// the subscription on the way out. It sends first (oldest seq first), then
// whatever the mailbox holds each time it fills. With untilFinal it ends
// once it has sent a final state, which completes the subscription.
//
// ch is unbuffered: while a send waits for a slow client, newer states
// replace older ones in the mailbox (latest wins), so a client is never
// more than one state behind the one on the wire.
func streamProgress(ctx context.Context, sub *db.ProgressSubscription, first []*db.ImportRun, ch chan<- *db.ImportRun, untilFinal bool) {
	defer close(ch)
	defer sub.Close()
	send := func(runs []*db.ImportRun) (done bool) {
		slices.SortFunc(runs, func(a, b *db.ImportRun) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
		for _, run := range runs {
			select {
			case ch <- run:
				sub.Delivered(run)
			case <-ctx.Done():
				return true
			}
			if untilFinal && !db.RunIsActive(run.State) {
				return true
			}
		}
		return false
	}
	if send(first) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Ready():
			if send(sub.Take()) {
				return
			}
		}
	}
}
