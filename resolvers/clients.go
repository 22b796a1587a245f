package resolvers

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/graph/model"
)

// MinSearchLength is the shortest text search: the trigram index needs three
// characters to narrow anything down.
const MinSearchLength = 3

// clientOrder is a client list's order, decided.
type clientOrder struct {
	field db.ClientOrderField
	desc  bool
}

func decideClientOrder(o *model.ClientOrder) clientOrder {
	if o == nil {
		return clientOrder{field: db.ClientOrderID}
	}
	return clientOrder{
		field: db.ClientOrderField(o.Field),
		desc:  o.Direction != nil && *o.Direction == model.OrderDirectionDesc,
	}
}

// tag names the order in a cursor, so a cursor from another order is
// refused instead of silently pointing somewhere else.
func (o clientOrder) tag() string {
	if o.desc {
		return string(o.field) + ":D"
	}
	return string(o.field) + ":A"
}

// Client cursors are opaque: base64url of "k|<order>|<id>|<sort key>". The
// key comes last, so a last name may hold any character.
func encodeClientCursor(o clientOrder, c *db.Client) string {
	cur := db.ClientCursorOf(c, o.field)
	var key string
	switch k := cur.Key.(type) {
	case *time.Time:
		if k != nil {
			key = k.Format(time.DateOnly)
		}
	case time.Time:
		key = strconv.FormatInt(k.UnixMicro(), 10)
	case string:
		key = k
	}
	raw := "k|" + o.tag() + "|" + strconv.FormatInt(cur.ID, 10) + "|" + key
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeClientCursor(o clientOrder, c *string) (*db.ClientCursor, error) {
	if c == nil {
		return nil, nil
	}
	bad := errBadInput("malformed cursor")
	raw, err := base64.RawURLEncoding.DecodeString(*c)
	if err != nil {
		return nil, bad
	}
	parts := strings.SplitN(string(raw), "|", 4)
	if len(parts) != 4 || parts[0] != "k" {
		return nil, bad
	}
	if parts[1] != o.tag() {
		return nil, errBadInput("this cursor belongs to another orderBy: start again without after/before")
	}
	id, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return nil, bad
	}
	cur := &db.ClientCursor{ID: id}
	key := parts[3]
	switch o.field {
	case db.ClientOrderEventDate:
		var d *time.Time
		if key != "" {
			t, err := time.Parse(time.DateOnly, key)
			if err != nil {
				return nil, bad
			}
			d = &t
		}
		cur.Key = d
	case db.ClientOrderLastName:
		cur.Key = key
	case db.ClientOrderUpdatedAt, db.ClientOrderCreatedAt:
		us, err := strconv.ParseInt(key, 10, 64)
		if err != nil {
			return nil, bad
		}
		cur.Key = time.UnixMicro(us).UTC()
	}
	return cur, nil
}

// decideClientFilter checks and converts the GraphQL filter.
func decideClientFilter(f *model.ClientFilter) (db.ClientFilter, error) {
	var out db.ClientFilter
	if f == nil {
		return out, nil
	}
	if f.Search != nil {
		out.Search = strings.TrimSpace(*f.Search)
		if n := len([]rune(out.Search)); n > 0 && n < MinSearchLength {
			return out, errBadInput("search needs at least 3 characters")
		}
		if len(out.Search) > 200 {
			return out, errBadInput("search is at most 200 characters")
		}
	}
	for _, s := range f.Stages {
		out.Stages = append(out.Stages, string(s))
	}
	out.EventDateFrom, out.EventDateTo = f.EventDateFrom, f.EventDateTo
	for _, gid := range f.IntegrationIds {
		id, err := parseTypedID(gid, typeIntegration)
		if err != nil {
			return out, err
		}
		out.IntegrationIDs = append(out.IntegrationIDs, id)
	}
	out.IncludeDeleted = f.IncludeDeleted != nil && *f.IncludeDeleted
	return out, nil
}

// clientPage loads one page of clients: the organization's list with the
// arguments decided, through the cache.
func (r *Resolver) clientPage(ctx context.Context, orgID int64, first *int, after *string, last *int, before *string, network *model.NetworkQuality, filter *model.ClientFilter, orderBy *model.ClientOrder) (*model.ClientConnection, error) {
	ps, err := decideSize(ctx, first, last, after, before, network)
	if err != nil {
		return nil, err
	}
	order := decideClientOrder(orderBy)
	f, err := decideClientFilter(filter)
	if err != nil {
		return nil, err
	}
	p := &db.ClientListParams{
		OrgID: orgID, Filter: f, Order: order.field, Desc: order.desc,
		Limit: ps.limit, Backward: ps.backward,
	}
	if p.After, err = decodeClientCursor(order, after); err != nil {
		return nil, err
	}
	if p.Before, err = decodeClientCursor(order, before); err != nil {
		return nil, err
	}
	rows, res, err := r.listClients(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := r.primeClientPage(ctx, rows); err != nil {
		return nil, err
	}
	conn := &model.ClientConnection{
		Nodes: rows, PageSize: ps.limit, Network: ps.network,
		PageInfo:  &model.PageInfo{HasNextPage: res.HasNext, HasPreviousPage: res.HasPrevious},
		CountFunc: func(ctx context.Context) (int, error) { return r.Queries.ClientCount(ctx, orgID, &f) },
	}
	for _, row := range rows {
		conn.Edges = append(conn.Edges, &model.ClientEdge{Cursor: encodeClientCursor(order, row), Node: row})
	}
	if len(conn.Edges) > 0 {
		conn.PageInfo.StartCursor = &conn.Edges[0].Cursor
		conn.PageInfo.EndCursor = &conn.Edges[len(conn.Edges)-1].Cursor
	}
	return conn, nil
}
