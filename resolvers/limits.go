package resolvers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/graph/model"
)

// Defaults of QueryLimits. They fit crmhub's schema: the deepest useful
// query (organization → importRuns → nodes → rejects → nodes → field) is 7
// levels, and a page of 100 clients with every field costs about 3,500.
const (
	// MaxComplexityDefault is the highest cost one operation may have.
	MaxComplexityDefault = 10_000
	// MaxDepthDefault is how deeply selections may nest.
	MaxDepthDefault = 12
	// MaxAliasesDefault is how many aliased fields one document may hold.
	MaxAliasesDefault = 30
	// MaxFieldRepeatsDefault is how often one response key (or fragment
	// spread) may appear in a single selection set.
	MaxFieldRepeatsDefault = 10
	// MaxTokensDefault is gqlparser's token limit for one document.
	MaxTokensDefault = 5_000
	// introspectionCost is the flat price of a __schema or __type
	// selection; gqlparser's MaxIntrospectionDepth rule bounds its shape.
	introspectionCost = 100
	// costCap keeps saturating arithmetic far from overflow.
	costCap = int64(1) << 50
)

// costExtension is the Stats extension the analysed cost travels in from
// parameter checking to the response.
const costExtension = "crmhub.cost"

// QueryLimits prices and bounds a GraphQL operation before gqlgen validates
// it. gqlgen's pipeline runs parameter mutators (APQ, then this), then parses
// and validates the document, then runs operation middleware and resolvers;
// the validator is quadratic on a field repeated thousands of times, so the
// cheap checks here run first, on their own parse of the raw query:
// the parser's token limit, a cap on aliases and on repeated response keys,
// a depth limit and a cost limit. The cost is what the query would fetch:
// every field costs 1 and a connection multiplies its edges and nodes by its
// page size (first/last clamped to 1..100, else the network argument, else
// the client hints, else MEDIUM).
//
// Use it after extension.AutomaticPersistedQuery so the query text is known.
type QueryLimits struct {
	// MaxComplexity is the highest cost of one operation. Defaults to
	// MaxComplexityDefault.
	MaxComplexity int
	// MaxDepth is how deeply selections may nest. Defaults to
	// MaxDepthDefault.
	MaxDepth int
	// MaxAliases is how many aliased fields a document may hold. Defaults
	// to MaxAliasesDefault.
	MaxAliases int
	// MaxFieldRepeats is how often one response key may appear in one
	// selection set. Defaults to MaxFieldRepeatsDefault.
	MaxFieldRepeats int
	// MaxTokens is the parser's token limit. Defaults to MaxTokensDefault.
	MaxTokens int

	schema *ast.Schema
	// priced remembers the cost of operations that passed, so a query a
	// phone repeats is not parsed and walked again; the key holds all the
	// cost depends on (pricedKey).
	priced *lru.LRU[int64]
}

// pricedSize is how many priced operations QueryLimits remembers.
const pricedSize = 1000

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.ResponseInterceptor
} = (*QueryLimits)(nil)

// WithDefaults returns a copy of l with every unset limit at its default.
func (l QueryLimits) WithDefaults() *QueryLimits {
	or := func(v, d int) int {
		if v <= 0 {
			return d
		}
		return v
	}
	l.MaxComplexity = or(l.MaxComplexity, MaxComplexityDefault)
	l.MaxDepth = or(l.MaxDepth, MaxDepthDefault)
	l.MaxAliases = or(l.MaxAliases, MaxAliasesDefault)
	l.MaxFieldRepeats = or(l.MaxFieldRepeats, MaxFieldRepeatsDefault)
	l.MaxTokens = or(l.MaxTokens, MaxTokensDefault)
	l.priced = lru.New[int64](pricedSize)
	return &l
}

// ExtensionName names the extension in gqlgen's list.
func (*QueryLimits) ExtensionName() string { return "QueryLimits" }

// Validate keeps the schema the limits price fields against.
func (l *QueryLimits) Validate(es graphql.ExecutableSchema) error {
	l.schema = es.Schema()
	return nil
}

// Cost is an operation's price, reported in extensions.cost.
type Cost struct {
	Requested int64 `json:"requested"`
	Limit     int   `json:"limit"`
}

// MutateOperationParameters rejects a query over any limit, before gqlgen
// parses and validates it.
func (l *QueryLimits) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if params.Query == "" {
		return nil // APQ asks for the query text; gqlgen answers.
	}
	key, keyed := pricedKey(ctx, params)
	if keyed && l.priced != nil {
		if cost, ok := l.priced.Get(ctx, key); ok {
			l.report(ctx, cost)
			return nil
		}
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, l.MaxTokens)
	if err != nil {
		switch msg := err.Error(); {
		case strings.Contains(msg, "exceeded token limit"):
			return limitError(CodeComplexity, fmt.Sprintf("the query has more than %d tokens, the limit", l.MaxTokens))
		case strings.Contains(msg, "exceeded maximum nesting depth"):
			return limitError(CodeDepth, fmt.Sprintf("the query nests deeper than the parser allows; the limit is %d", l.MaxDepth))
		}
		return nil // gqlgen's own parse reports the syntax error.
	}
	a := &analysis{limits: l, ctx: ctx, vars: params.Variables,
		fragments: map[string]*ast.FragmentDefinition{}, depthMemo: map[string]int{}, costMemo: map[costKey]int64{}}
	for _, f := range doc.Fragments {
		a.fragments[f.Name] = f
	}
	if e := a.checkShape(doc); e != nil {
		return e
	}
	var cost int64
	for _, op := range doc.Operations {
		if params.OperationName != "" && op.Name != params.OperationName && len(doc.Operations) > 1 {
			continue
		}
		root := l.rootType(op.Operation)
		cost = max(cost, a.cost(op.SelectionSet, root, 1, map[string]bool{}))
	}
	l.report(ctx, cost)
	if cost > int64(l.MaxComplexity) {
		e := limitError(CodeComplexity, fmt.Sprintf("the query costs %d, over the limit of %d: ask for smaller pages (first/last) or fewer nested lists", cost, l.MaxComplexity))
		e.Extensions["cost"] = &Cost{Requested: cost, Limit: l.MaxComplexity}
		return e
	}
	if keyed && l.priced != nil {
		l.priced.Add(ctx, key, cost)
	}
	return nil
}

// report puts the cost where InterceptResponse finds it.
func (l *QueryLimits) report(ctx context.Context, cost int64) {
	if graphql.HasOperationContext(ctx) {
		graphql.GetOperationContext(ctx).Stats.SetExtension(costExtension, &Cost{Requested: cost, Limit: l.MaxComplexity})
	}
}

// pricedKey is a hash of everything an operation's cost and its pass of the shape
// checks depend on: the text, the operation picked, the variables (page
// sizes may be variables) and the page size the client hints give.
func pricedKey(ctx context.Context, params *graphql.RawParams) (string, bool) {
	vars, err := json.Marshal(params.Variables) // map keys come out sorted
	if err != nil {
		return "", false
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(strconv.Itoa(DefaultPageSize(ctx))), []byte(params.OperationName), vars, []byte(params.Query)} {
		h.Write(part)
		h.Write([]byte{0})
	}
	return string(h.Sum(nil)), true
}

// InterceptResponse reports the operation's cost in extensions.cost.
func (l *QueryLimits) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	if c, ok := graphql.GetOperationContext(ctx).Stats.GetExtension(costExtension).(*Cost); ok {
		if resp.Extensions == nil {
			resp.Extensions = map[string]any{}
		}
		resp.Extensions["cost"] = c
	}
	return resp
}

func (l *QueryLimits) rootType(op ast.Operation) string {
	if l.schema == nil {
		return ""
	}
	var def *ast.Definition
	switch op {
	case ast.Mutation:
		def = l.schema.Mutation
	case ast.Subscription:
		def = l.schema.Subscription
	default:
		def = l.schema.Query
	}
	if def == nil {
		return ""
	}
	return def.Name
}

func limitError(code, msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
}

type costKey struct {
	fragment string
	mult     int64
}

// analysis walks one document. Fragment results are memoised, so a
// document whose fragments spread each other exponentially is still walked
// in linear time.
type analysis struct {
	limits    *QueryLimits
	ctx       context.Context
	vars      map[string]any
	fragments map[string]*ast.FragmentDefinition
	depthMemo map[string]int
	costMemo  map[costKey]int64
}

// checkShape applies the structural limits to every operation and fragment
// in the document, used or not: gqlgen validates them all.
func (a *analysis) checkShape(doc *ast.QueryDocument) *gqlerror.Error {
	aliases := 0
	var walk func(ast.SelectionSet) *gqlerror.Error
	walk = func(set ast.SelectionSet) *gqlerror.Error {
		seen := map[string]int{}
		for _, sel := range set {
			var key string
			var children ast.SelectionSet
			switch s := sel.(type) {
			case *ast.Field:
				key = s.Alias
				if key == "" {
					key = s.Name
				}
				if s.Alias != "" && s.Alias != s.Name {
					aliases++
				}
				children = s.SelectionSet
			case *ast.InlineFragment:
				key = "... on " + s.TypeCondition
				children = s.SelectionSet
			case *ast.FragmentSpread:
				key = "..." + s.Name
			}
			if seen[key]++; seen[key] > a.limits.MaxFieldRepeats {
				return limitError(CodeComplexity, fmt.Sprintf("%q appears more than %d times in one selection, the limit", key, a.limits.MaxFieldRepeats))
			}
			if aliases > a.limits.MaxAliases {
				return limitError(CodeComplexity, fmt.Sprintf("the query has more than %d aliases, the limit", a.limits.MaxAliases))
			}
			if e := walk(children); e != nil {
				return e
			}
		}
		return nil
	}
	for _, op := range doc.Operations {
		if e := walk(op.SelectionSet); e != nil {
			return e
		}
	}
	for _, f := range doc.Fragments {
		if e := walk(f.SelectionSet); e != nil {
			return e
		}
	}
	for _, f := range doc.Fragments {
		if _, cyclic := a.depth(f.SelectionSet, map[string]bool{f.Name: true}); cyclic != "" {
			return limitError(CodeBadUserInput, fmt.Sprintf("fragment %q spreads itself", cyclic))
		}
	}
	for _, op := range doc.Operations {
		if d, _ := a.depth(op.SelectionSet, map[string]bool{}); d > a.limits.MaxDepth {
			return limitError(CodeDepth, fmt.Sprintf("the query nests %d levels deep, over the limit of %d", d, a.limits.MaxDepth))
		}
	}
	return nil
}

// depth returns how deeply set nests, and the name of a fragment that
// spreads itself, if any. Introspection selections count as one level: the
// validator's MaxIntrospectionDepth rule bounds them.
func (a *analysis) depth(set ast.SelectionSet, path map[string]bool) (int, string) {
	d := 0
	for _, sel := range set {
		var n int
		var cyclic string
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				n = 1
				break
			}
			n, cyclic = a.depth(s.SelectionSet, path)
			n++
		case *ast.InlineFragment:
			n, cyclic = a.depth(s.SelectionSet, path)
		case *ast.FragmentSpread:
			n, cyclic = a.fragmentDepth(s.Name, path)
		}
		if cyclic != "" {
			return 0, cyclic
		}
		d = max(d, n)
	}
	return d, ""
}

func (a *analysis) fragmentDepth(name string, path map[string]bool) (int, string) {
	if path[name] {
		return 0, name
	}
	if d, ok := a.depthMemo[name]; ok {
		return d, ""
	}
	f, ok := a.fragments[name]
	if !ok {
		return 0, "" // An unknown fragment: the validator says so.
	}
	path[name] = true
	d, cyclic := a.depth(f.SelectionSet, path)
	delete(path, name)
	if cyclic == "" {
		a.depthMemo[name] = d
	}
	return d, cyclic
}

// cost prices set, selected on typeName; mult is the page size that list
// fields directly in set are multiplied by (1 outside connections).
func (a *analysis) cost(set ast.SelectionSet, typeName string, mult int64, path map[string]bool) int64 {
	var total int64
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			total = addCap(total, a.fieldCost(s, typeName, mult, path))
		case *ast.InlineFragment:
			t := typeName
			if s.TypeCondition != "" {
				t = s.TypeCondition
			}
			total = addCap(total, a.cost(s.SelectionSet, t, mult, path))
		case *ast.FragmentSpread:
			f, ok := a.fragments[s.Name]
			if !ok || path[s.Name] {
				continue
			}
			key := costKey{s.Name, mult}
			c, ok := a.costMemo[key]
			if !ok {
				path[s.Name] = true
				c = a.cost(f.SelectionSet, f.TypeCondition, mult, path)
				delete(path, s.Name)
				a.costMemo[key] = c
			}
			total = addCap(total, c)
		}
	}
	return total
}

func (a *analysis) fieldCost(f *ast.Field, typeName string, mult int64, path map[string]bool) int64 {
	if strings.HasPrefix(f.Name, "__") {
		if f.Name == "__typename" {
			return 1
		}
		return introspectionCost
	}
	var def *ast.FieldDefinition
	if a.limits.schema != nil {
		if t := a.limits.schema.Types[typeName]; t != nil {
			def = t.Fields.ForName(f.Name)
		}
	}
	if def == nil {
		// Unknown to the schema: the validator rejects it; price it plainly.
		return addCap(1, a.cost(f.SelectionSet, "", 1, path))
	}
	unit := int64(1)
	if def.Type.Elem != nil {
		unit = mult
	}
	inner := int64(1)
	if a.isConnection(def.Type.Name()) {
		inner = int64(a.pageSize(f))
	}
	return mulCap(unit, addCap(1, a.cost(f.SelectionSet, def.Type.Name(), inner, path)))
}

// isConnection reports whether a type is a Relay connection: its edges and
// nodes are one page long.
func (a *analysis) isConnection(name string) bool {
	t := a.limits.schema.Types[name]
	return t != nil && strings.HasSuffix(name, "Connection") && t.Fields.ForName("pageInfo") != nil
}

// pageSize is the page a connection field will fetch, decided as
// decidePage decides it.
func (a *analysis) pageSize(f *ast.Field) int {
	for _, name := range []string{"first", "last"} {
		if arg := f.Arguments.ForName(name); arg != nil {
			if n, ok := a.intValue(arg.Value); ok {
				return clamp(n, 1, PageSizeMax)
			}
		}
	}
	if arg := f.Arguments.ForName("network"); arg != nil {
		if s, ok := a.stringValue(arg.Value); ok && s != "" {
			return sizeFor(model.NetworkQuality(s))
		}
	}
	return DefaultPageSize(a.ctx)
}

func (a *analysis) intValue(v *ast.Value) (int, bool) {
	if v == nil {
		return 0, false
	}
	if v.Kind == ast.Variable {
		switch n := a.vars[v.Raw].(type) {
		case json.Number:
			i, err := n.Int64()
			return int(max(min(i, 1<<31), -1<<31)), err == nil
		case float64:
			return int(max(min(n, 1<<31), -1<<31)), true
		case int:
			return n, true
		case int64:
			return int(max(min(n, 1<<31), -1<<31)), true
		}
		return 0, false
	}
	if v.Kind != ast.IntValue {
		return 0, false
	}
	i, err := strconv.ParseInt(v.Raw, 10, 64)
	if err != nil {
		return PageSizeMax, true // Out of range: clamped like any huge page.
	}
	return int(max(min(i, 1<<31), -1<<31)), true
}

func (a *analysis) stringValue(v *ast.Value) (string, bool) {
	if v == nil {
		return "", false
	}
	if v.Kind == ast.Variable {
		s, ok := a.vars[v.Raw].(string)
		return s, ok
	}
	return v.Raw, v.Kind == ast.EnumValue
}

func addCap(a, b int64) int64 {
	if a+b > costCap || a+b < 0 {
		return costCap
	}
	return a + b
}

func mulCap(a, b int64) int64 {
	if a != 0 && b > costCap/a {
		return costCap
	}
	return a * b
}

// DefaultPageSize is the page size of a connection asked for without
// first, last or network: the client hints' network, else MEDIUM.
func DefaultPageSize(ctx context.Context) int {
	// Pricing a query reads the hints but does not mark the response as
	// varying with them; the connection that uses them does.
	if n, ok := hintedNetwork(ctx); ok {
		return sizeFor(n)
	}
	return PageSizeMedium
}

// IntrospectionPolicy decides per operation whether introspection is on:
// for every caller when All is set (dev, or CRMHUB_INTROSPECTION=on),
// otherwise for SUPPORT tokens only. gqlgen's own extension.Introspection
// turns it on for everyone.
type IntrospectionPolicy struct {
	// All turns introspection and field suggestions on for every caller.
	All bool
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = IntrospectionPolicy{}

// ExtensionName names the extension in gqlgen's list.
func (IntrospectionPolicy) ExtensionName() string { return "IntrospectionPolicy" }

// Validate accepts any schema.
func (IntrospectionPolicy) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext turns introspection on for callers who may use it.
func (p IntrospectionPolicy) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	opCtx.DisableIntrospection = !p.Allowed(ctx)
	return nil
}

// Allowed reports whether the caller of ctx may introspect the schema and
// see field suggestions.
func (p IntrospectionPolicy) Allowed(ctx context.Context) bool {
	if p.All {
		return true
	}
	pr := auth.PrincipalFrom(ctx)
	return pr != nil && pr.Role == auth.RoleSupport
}

// HideSuggestions wraps an error presenter so that callers who may not
// introspect do not learn field names from validation messages either.
// gqlgen's SetDisableSuggestion is global and covers only two rules; this is
// per request and covers every "Did you mean" message.
func (p IntrospectionPolicy) HideSuggestions(next graphql.ErrorPresenterFunc) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		if isIntrospectionDisabled(err) {
			e := graphql.DefaultErrorPresenter(ctx, err)
			e.Message = "introspection is for SUPPORT tokens (or a server with CRMHUB_INTROSPECTION=on)"
			e.Extensions = map[string]any{"code": CodeForbidden}
			return e
		}
		e := next(ctx, err)
		if e != nil && !p.Allowed(ctx) {
			e.Message = withoutSuggestion(e.Message)
		}
		return e
	}
}

// withoutSuggestion drops the "Did you mean …?" hint gqlparser appends to
// validation messages (unknown fields, arguments, types, enum values).
func withoutSuggestion(msg string) string {
	if i := strings.Index(msg, " Did you mean "); i >= 0 && strings.HasSuffix(msg, "?") {
		return strings.TrimSpace(msg[:i])
	}
	return msg
}

// isIntrospectionDisabled reports whether err is gqlgen's answer to
// introspection while it is off; gqlgen exports no sentinel for it.
func isIntrospectionDisabled(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == "introspection disabled" {
			return true
		}
	}
	return false
}
