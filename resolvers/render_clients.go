package resolvers

import (
	"bytes"
	"context"
	"io"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/graph/model"
)

// RenderClientPages writes a page of clients (a ClientConnection) to JSON in
// one pass, instead of through gqlgen's per-field machinery, which gives
// every field of every client its own field context and every list element
// its own goroutine: for a page of 50 clients that was most of the CPU of an
// uncached read (README, "Read path").
//
// It is a field interceptor: the resolver (Organization.clients) runs as
// before, with its arguments, errors and audit, and only the rendering of
// its result changes. gqlgen takes a graphql.Marshaler returned from the
// middleware chain as the field's value. Fields are collected by gqlgen's
// own CollectFields (fragments, aliases, @skip/@include), and every scalar
// is written by the marshaler the generated code uses, so the bytes are the
// same (TestRenderClientPagesSameBytes compares them for every field).
// Anything it does not know (an object edge such as Client.integration,
// @defer, a value gqlgen would turn into an error) leaves the page to
// gqlgen, whole.
type RenderClientPages struct {
	off      bool
	rendered *prometheus.CounterVec
}

// NewRenderClientPages returns the renderer; off leaves every page to
// gqlgen (tests compare the two).
func NewRenderClientPages(off bool) *RenderClientPages {
	return &RenderClientPages{off: off, rendered: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crmhub_client_pages_rendered_total",
		Help: "Pages of clients rendered, by renderer: crmhub (in one pass) or gqlgen (a selection the one-pass renderer leaves to gqlgen).",
	}, []string{"renderer"})}
}

var _ interface {
	graphql.HandlerExtension
	graphql.FieldInterceptor
} = (*RenderClientPages)(nil)

func (*RenderClientPages) ExtensionName() string                   { return "RenderClientPages" }
func (*RenderClientPages) Validate(graphql.ExecutableSchema) error { return nil }

// Collectors are the renderer's metrics, for the server's registry.
func (p *RenderClientPages) Collectors() []prometheus.Collector {
	return []prometheus.Collector{p.rendered}
}

// InterceptField renders a ClientConnection result when it can.
func (p *RenderClientPages) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	res, err := next(ctx)
	if err != nil {
		return res, err
	}
	conn, ok := res.(*model.ClientConnection)
	if !ok || conn == nil {
		return res, err
	}
	fc := graphql.GetFieldContext(ctx)
	oc := graphql.GetOperationContext(ctx)
	if p.off || fc == nil || oc == nil {
		p.rendered.WithLabelValues("gqlgen").Inc()
		return res, nil
	}
	r := pageRenderer{ctx: ctx, oc: oc}
	r.buf.Grow(256 + 400*len(conn.Nodes))
	if !r.connection(fc.Field.Selections, conn) {
		p.rendered.WithLabelValues("gqlgen").Inc()
		return res, nil
	}
	p.rendered.WithLabelValues("crmhub").Inc()
	return rendered(r.buf.Bytes()), nil
}

// rendered is JSON written ahead, handed to gqlgen as a field's value.
type rendered []byte

func (b rendered) MarshalGQL(w io.Writer) { _, _ = w.Write(b) }

var (
	connectionTypes = []string{"ClientConnection"}
	edgeTypes       = []string{"ClientEdge"}
	clientTypes     = []string{"Client", "Node"}
	pageInfoTypes   = []string{"PageInfo"}
)

// pageRenderer writes one ClientConnection; each method reports false on a
// selection it does not render, and the caller then discards what it wrote.
type pageRenderer struct {
	ctx context.Context
	oc  *graphql.OperationContext
	buf bytes.Buffer
}

// collect is gqlgen's field collection, refusing deferred fragments.
func (r *pageRenderer) collect(sel ast.SelectionSet, satisfies []string) ([]graphql.CollectedField, bool) {
	fields := graphql.CollectFields(r.oc, sel, satisfies)
	for i := range fields {
		if len(fields[i].Deferrables) > 0 {
			return nil, false
		}
	}
	return fields, true
}

// object writes {"alias":value,...} as gqlgen's FieldSet does (a repeated
// alias is written once), value writing each field's value.
func (r *pageRenderer) object(fields []graphql.CollectedField, value func(f *graphql.CollectedField) bool) bool {
	r.buf.WriteByte('{')
	for i := range fields {
		f := &fields[i]
		if repeated(fields[:i], f.Alias) {
			continue
		}
		if i > 0 {
			r.buf.WriteByte(',')
		}
		r.marshal(graphql.MarshalString(f.Alias))
		r.buf.WriteByte(':')
		if !value(f) {
			return false
		}
	}
	r.buf.WriteByte('}')
	return true
}

func repeated(before []graphql.CollectedField, alias string) bool {
	for i := range before {
		if before[i].Alias == alias {
			return true
		}
	}
	return false
}

func (r *pageRenderer) marshal(m graphql.Marshaler) { m.MarshalGQL(&r.buf) }

func (r *pageRenderer) connection(sel ast.SelectionSet, conn *model.ClientConnection) bool {
	fields, ok := r.collect(sel, connectionTypes)
	if !ok {
		return false
	}
	// Collected once per selection set, not once per client. Two
	// differently aliased edges (or nodes) selections are left to gqlgen.
	var edgeFields, nodeFields, edgeNodeFields []graphql.CollectedField
	var edges, nodes int
	for i := range fields {
		switch f := &fields[i]; f.Name {
		case "edges":
			if edges++; edges > 1 {
				return false
			}
			if edgeFields, ok = r.collect(f.Selections, edgeTypes); !ok {
				return false
			}
			for j := range edgeFields {
				if edgeFields[j].Name == "node" && edgeNodeFields == nil {
					if edgeNodeFields, ok = r.collect(edgeFields[j].Selections, clientTypes); !ok {
						return false
					}
				}
			}
		case "nodes":
			if nodes++; nodes > 1 {
				return false
			}
			if nodeFields, ok = r.collect(f.Selections, clientTypes); !ok {
				return false
			}
		}
	}
	return r.object(fields, func(f *graphql.CollectedField) bool {
		switch f.Name {
		case "__typename":
			r.marshal(graphql.MarshalString("ClientConnection"))
		case "edges":
			return r.list(len(conn.Edges), func(i int) bool {
				e := conn.Edges[i]
				return r.object(edgeFields, func(f *graphql.CollectedField) bool {
					switch f.Name {
					case "__typename":
						r.marshal(graphql.MarshalString("ClientEdge"))
					case "cursor":
						r.marshal(graphql.MarshalString(e.Cursor))
					case "node":
						// Every node field of an edge is collected the
						// same way; a second, different "node" selection
						// under another alias is left to gqlgen.
						if !sameSelections(f, edgeFields) {
							return false
						}
						return r.client(edgeNodeFields, e.Node)
					default:
						return false
					}
					return true
				})
			})
		case "nodes":
			return r.list(len(conn.Nodes), func(i int) bool { return r.client(nodeFields, conn.Nodes[i]) })
		case "pageInfo":
			return r.pageInfo(f.Selections, conn.PageInfo)
		case "totalCount":
			if conn.CountFunc == nil {
				return false
			}
			n, err := conn.CountFunc(r.ctx)
			if err != nil {
				return false // gqlgen asks again and reports the error
			}
			r.marshal(graphql.MarshalInt(n))
		case "pageSize":
			r.marshal(graphql.MarshalInt(conn.PageSize))
		case "network":
			r.marshal(conn.Network)
		default:
			return false
		}
		return true
	})
}

// sameSelections reports whether f is the first "node" field of edge, whose
// selections edgeNodeFields were collected from.
func sameSelections(f *graphql.CollectedField, edge []graphql.CollectedField) bool {
	for i := range edge {
		if edge[i].Name == "node" {
			return &edge[i] == f
		}
	}
	return false
}

func (r *pageRenderer) list(n int, elem func(i int) bool) bool {
	r.buf.WriteByte('[')
	for i := range n {
		if i > 0 {
			r.buf.WriteByte(',')
		}
		if !elem(i) {
			return false
		}
	}
	r.buf.WriteByte(']')
	return true
}

func (r *pageRenderer) pageInfo(sel ast.SelectionSet, pi *model.PageInfo) bool {
	if pi == nil {
		return false
	}
	fields, ok := r.collect(sel, pageInfoTypes)
	if !ok {
		return false
	}
	return r.object(fields, func(f *graphql.CollectedField) bool {
		switch f.Name {
		case "__typename":
			r.marshal(graphql.MarshalString("PageInfo"))
		case "hasNextPage":
			r.marshal(graphql.MarshalBoolean(pi.HasNextPage))
		case "hasPreviousPage":
			r.marshal(graphql.MarshalBoolean(pi.HasPreviousPage))
		case "startCursor":
			r.optionalString(pi.StartCursor)
		case "endCursor":
			r.optionalString(pi.EndCursor)
		default:
			return false
		}
		return true
	})
}

func (r *pageRenderer) optionalString(s *string) {
	if s == nil {
		r.marshal(graphql.Null)
		return
	}
	r.marshal(graphql.MarshalString(*s))
}

func (r *pageRenderer) optionalTime(t *time.Time) {
	if t == nil {
		r.marshal(graphql.Null)
		return
	}
	r.marshal(graphql.MarshalTime(*t))
}

// requiredTime writes a Time! field; a zero time, which gqlgen would turn
// into an error, is left to gqlgen.
func (r *pageRenderer) requiredTime(t time.Time) bool {
	m := graphql.MarshalTime(t)
	if m == graphql.Null {
		return false
	}
	r.marshal(m)
	return true
}

// client writes one Client's scalar fields, as the generated _Client_*
// functions do.
func (r *pageRenderer) client(fields []graphql.CollectedField, c *db.Client) bool {
	if c == nil {
		return false
	}
	return r.object(fields, func(f *graphql.CollectedField) bool {
		switch f.Name {
		case "__typename":
			r.marshal(graphql.MarshalString("Client"))
		case "id":
			r.marshal(graphql.MarshalID(c.GlobalID()))
		case "externalId":
			r.marshal(graphql.MarshalString(c.ExternalID))
		case "firstName":
			r.marshal(graphql.MarshalString(c.FirstName))
		case "lastName":
			r.marshal(graphql.MarshalString(c.LastName))
		case "maidenName":
			r.marshal(graphql.MarshalString(c.MaidenName))
		case "partnerFirstName":
			r.marshal(graphql.MarshalString(c.PartnerFirstName))
		case "partnerLastName":
			r.marshal(graphql.MarshalString(c.PartnerLastName))
		case "displayName":
			r.marshal(graphql.MarshalString(c.DisplayName()))
		case "email":
			r.marshal(graphql.MarshalString(c.Email))
		case "phone":
			r.marshal(graphql.MarshalString(c.Phone))
		case "venue":
			r.marshal(graphql.MarshalString(c.Venue))
		case "jobType":
			r.marshal(graphql.MarshalString(c.JobType))
		case "leadSource":
			r.marshal(graphql.MarshalString(c.LeadSource))
		case "eventDate":
			if c.EventDate == nil {
				r.marshal(graphql.Null)
			} else {
				r.marshal(model.MarshalDate(*c.EventDate))
			}
		case "stage":
			if c.Stage == nil {
				r.marshal(graphql.Null)
			} else {
				r.marshal(graphql.MarshalString(stageName(*c.Stage)))
			}
		case "guestCount":
			if c.GuestCount == nil {
				r.marshal(graphql.Null)
			} else {
				r.marshal(graphql.MarshalInt32(*c.GuestCount))
			}
		case "sourceCreatedAt":
			r.optionalTime(c.SourceCreatedAt)
		case "sourceUpdatedAt":
			r.optionalTime(c.SourceUpdatedAt)
		case "deletedAt":
			r.optionalTime(c.DeletedAt)
		case "createdAt":
			return r.requiredTime(c.CreatedAt)
		case "updatedAt":
			return r.requiredTime(c.UpdatedAt)
		default:
			// integration and bookingValue resolve through loaders and
			// resolvers: gqlgen's.
			return false
		}
		return true
	})
}

// stageName is the ClientStage enum value of s, as gqlgen's generated map
// has it ("" for a value the schema does not know).
func stageName(s crm.Stage) string {
	switch s {
	case crm.StageLead, crm.StageBooked, crm.StageFulfilled, crm.StageCompleted, crm.StageLost:
		return string(s)
	}
	return ""
}
