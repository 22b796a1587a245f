package resolvers

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
)

// Defaults of CacheConfig.
const (
	CacheTTLDefault      = 5 * time.Minute
	CacheMaxItemsDefault = 20000
	// CacheMaxAnswerBytesDefault caps the bytes of cached answers.
	CacheMaxAnswerBytesDefault = 64 << 20
	PrincipalCacheTTLDefault   = time.Second
)

// CacheConfig configures the read cache.
type CacheConfig struct {
	// Disabled turns the page and client cache off (every read goes to
	// PostgreSQL); principals are still cached for PrincipalTTL.
	Disabled bool
	// TTL bounds how long a page or client stays cached. Entries of an old
	// data version are never read again; the TTL only frees their memory.
	// Defaults to 5 minutes.
	TTL time.Duration
	// MaxItems caps the page, client and answer entries; past it nothing new is
	// stored until entries expire. Defaults to 20,000.
	MaxItems int
	// MaxAnswerBytes caps the bytes of whole answers kept; past it
	// nothing new is kept until entries expire. Defaults to 64 MiB.
	MaxAnswerBytes int
	// PrincipalTTL bounds how long a token → principal answer is reused: a
	// revoked token stops working on every node within it even if the
	// revocation notification is missed. Defaults to 1 second.
	PrincipalTTL time.Duration
}

// WithDefaults fills the zero fields.
func (c CacheConfig) WithDefaults() CacheConfig {
	if c.TTL <= 0 {
		c.TTL = CacheTTLDefault
	}
	if c.MaxItems <= 0 {
		c.MaxItems = CacheMaxItemsDefault
	}
	if c.MaxAnswerBytes <= 0 {
		c.MaxAnswerBytes = CacheMaxAnswerBytesDefault
	}
	if c.PrincipalTTL <= 0 {
		c.PrincipalTTL = PrincipalCacheTTLDefault
	}
	return c
}

// VersionSource tells an organization's current data version; ok is false
// when the node cannot know (its LISTEN connection is down).
type VersionSource interface {
	Version(ctx context.Context, orgID int64) (v int64, ok bool, err error)
}

// Cache is the in-process read tier in front of PostgreSQL: client pages
// and single clients keyed by their organization's data version (a read
// after a committed change never finds the old entry), and token →
// principal for at most PrincipalTTL.
type Cache struct {
	cfg        CacheConfig
	versions   VersionSource
	rows       *gocache.Cache
	principals *gocache.Cache
	lookups    *prometheus.CounterVec
	// answerBytes is the size of the answers in rows.
	answerBytes atomic.Int64
}

// NewCache returns a cache over versions.
func NewCache(cfg CacheConfig, versions VersionSource) *Cache {
	cfg = cfg.WithDefaults()
	c := &Cache{
		cfg: cfg, versions: versions,
		rows:       gocache.New(cfg.TTL, cfg.TTL),
		principals: gocache.New(cfg.PrincipalTTL, 30*time.Second),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhub_cache_lookups_total",
			Help: "Read cache lookups by cache (page, client, response, principal) and result (hit, miss, bypass).",
		}, []string{"cache", "result"}),
	}
	c.rows.OnEvicted(func(_ string, v any) {
		if a, ok := v.(*cachedAnswer); ok {
			c.answerBytes.Add(-int64(len(a.body)))
		}
	})
	return c
}

// Collectors are the cache's metrics, for the server's registry.
func (c *Cache) Collectors() []prometheus.Collector { return []prometheus.Collector{c.lookups} }

// ForgetPrincipals drops every cached principal (a token was revoked).
func (c *Cache) ForgetPrincipals() {
	if c != nil {
		c.principals.Flush()
	}
}

// version returns orgID's data version when the rows cache may be used.
func (c *Cache) version(ctx context.Context, kind string, orgID int64) (int64, bool) {
	if c == nil || c.cfg.Disabled {
		return 0, false
	}
	v, ok, err := c.versions.Version(ctx, orgID)
	if err != nil || !ok {
		c.lookups.WithLabelValues(kind, "bypass").Inc()
		return 0, false
	}
	return v, true
}

func (c *Cache) get(kind, key string) (any, bool) {
	v, ok := c.rows.Get(key)
	if ok {
		c.lookups.WithLabelValues(kind, "hit").Inc()
	} else {
		c.lookups.WithLabelValues(kind, "miss").Inc()
	}
	return v, ok
}

func (c *Cache) set(key string, v any) {
	if c.rows.ItemCount() >= c.cfg.MaxItems {
		return
	}
	c.rows.SetDefault(key, v)
}

// setAnswer keeps an answer within MaxAnswerBytes. Two requests may race to
// keep the same answer; Add keeps the first, so the byte count stays true.
func (c *Cache) setAnswer(key string, a *cachedAnswer) {
	n := int64(len(a.body))
	if c.rows.ItemCount() >= c.cfg.MaxItems || c.answerBytes.Load()+n > int64(c.cfg.MaxAnswerBytes) {
		return
	}
	if c.rows.Add(key, a, gocache.DefaultExpiration) == nil {
		c.answerBytes.Add(n)
	}
}

// cachedPage is a cached client page.
type cachedPage struct {
	rows []*db.Client
	res  db.PageResult
}

// pageKey spells out every parameter of a page and the data version.
func pageKey(v int64, p *db.ClientListParams) string {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('|') }
	i := func(n int64) { w(strconv.FormatInt(n, 10)) }
	w("p")
	i(p.OrgID)
	i(v)
	w(string(p.Order))
	w(strconv.FormatBool(p.Desc))
	i(int64(p.Limit))
	w(strconv.FormatBool(p.Backward))
	for _, cur := range []*db.ClientCursor{p.After, p.Before} {
		if cur == nil {
			w("-")
			continue
		}
		i(cur.ID)
		switch k := cur.Key.(type) {
		case *time.Time:
			if k != nil {
				w(k.Format(time.DateOnly))
			} else {
				w("null")
			}
		case time.Time:
			i(k.UnixMicro())
		case string:
			w(strconv.Quote(k))
		default:
			w("")
		}
	}
	f := &p.Filter
	w(strconv.Quote(f.Search))
	w(strings.Join(f.Stages, ","))
	for _, d := range []*time.Time{f.EventDateFrom, f.EventDateTo} {
		if d != nil {
			w(d.Format(time.DateOnly))
		} else {
			w("-")
		}
	}
	for _, id := range f.IntegrationIDs {
		b.WriteString(strconv.FormatInt(id, 10))
		b.WriteByte(',')
	}
	w("")
	w(strconv.FormatBool(f.IncludeDeleted))
	return b.String()
}

// listClients reads a page of clients, from the cache when it holds the
// page at the organization's current data version.
func (r *Resolver) listClients(ctx context.Context, p *db.ClientListParams) ([]*db.Client, db.PageResult, error) {
	v, ok := r.Cache.version(ctx, "page", p.OrgID)
	if !ok {
		return r.Queries.ClientList(ctx, p)
	}
	key := pageKey(v, p)
	if e, hit := r.Cache.get("page", key); hit {
		page := e.(*cachedPage)
		return page.rows, page.res, nil
	}
	rows, res, err := r.Queries.ClientList(ctx, p)
	if err != nil {
		return nil, res, err
	}
	r.Cache.set(key, &cachedPage{rows: rows, res: res})
	return rows, res, nil
}

// clientByID reads one client of orgID, from the cache when it holds it at
// the organization's current data version.
func (r *Resolver) clientByID(ctx context.Context, orgID, id int64) (*db.Client, error) {
	v, ok := r.Cache.version(ctx, "client", orgID)
	if !ok {
		return r.Queries.ClientGetByID(ctx, orgID, id)
	}
	key := "c|" + strconv.FormatInt(orgID, 10) + "|" + strconv.FormatInt(v, 10) + "|" + strconv.FormatInt(id, 10)
	if e, hit := r.Cache.get("client", key); hit {
		return e.(*db.Client), nil
	}
	c, err := r.Queries.ClientGetByID(ctx, orgID, id)
	if err != nil {
		return nil, err
	}
	r.Cache.set(key, c)
	return c, nil
}

// cachedPrincipal returns the principal of a token hash seen within
// PrincipalTTL.
func (c *Cache) cachedPrincipal(hash []byte) (*auth.Principal, bool) {
	if c == nil {
		return nil, false
	}
	v, ok := c.principals.Get(string(hash))
	if ok {
		c.lookups.WithLabelValues("principal", "hit").Inc()
		return v.(*auth.Principal), true
	}
	c.lookups.WithLabelValues("principal", "miss").Inc()
	return nil, false
}

func (c *Cache) storePrincipal(hash []byte, p *auth.Principal) {
	if c != nil {
		c.principals.SetDefault(string(hash), p)
	}
}
