package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/crm/crmsim"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/db/bootstrap"
	"github.com/wedsync/crmhub/resolvers"
)

// devDataDir holds what `crmhub dev` keeps between runs: the private
// PostgreSQL cluster (when one is needed), the dev secret key and the demo
// tokens. It is in .gitignore.
const devDataDir = ".data"

// devDBURL prints a PostgreSQL URL that answers, for the Makefile.
func devDBURL(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	url, err := bootstrap.URL(ctx, log, bootstrap.Config{
		DatabaseURL: getenv("DATABASE_URL"),
		DataDir:     filepath.Join(devDataDir, "postgres"),
		Stdout:      stderr,
		Stderr:      stderr,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, url)
	return nil
}

// dev is `make run`: find or start a database, migrate, seed the demo
// organization once, and serve with the Playground open.
func dev(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv, "text")
	if err != nil {
		return err
	}
	log := slog.New(logHandler{newLogger(cfg.LogFormat, cfg.LogLevel).Handler()})
	if getenv("CRMHUB_CRM_REQUESTS_PER_MINUTE") == "" {
		cfg.CRMRequestsPerMinute = -1 // The demo CRMs are the local simulator.
	}

	res, err := bootstrap.Ensure(ctx, log, bootstrap.Config{
		DatabaseURL: cfg.DatabaseURL,
		DataDir:     filepath.Join(devDataDir, "postgres"),
		Stdout:      os.Stderr,
		Stderr:      os.Stderr,
	})
	if err != nil {
		return err
	}
	cfg.DatabaseURL = res.URL
	log.Info("database", "source", res.Source.String())

	if cfg.SecretKey == "" {
		if cfg.SecretKey, err = devSecretKey(); err != nil {
			return err
		}
	}

	pool, err := openPool(ctx, cfg, nil)
	if err != nil {
		return err
	}
	if err := db.Migrate(ctx, pool, log); err != nil {
		pool.Close()
		return err
	}
	sealer, err := auth.NewSealer(cfg.SecretKey, cfg.OldSecretKeys...)
	if err != nil {
		pool.Close()
		return err
	}
	seed, err := seedDemo(ctx, pool, sealer, "http://"+displayAddr(cfg.Addr)+"/sim")
	pool.Close()
	if err != nil {
		return err
	}

	return serve(ctx, cfg, log, serveOptions{
		introspection: true,
		ready: func(addr string) {
			base := "http://" + displayAddr(addr)
			fmt.Fprintf(stdout, `
crmhub is running.

  Playground  %[1]s/playground/
  GraphQL     %[1]s/graphql

Demo organization %[2]q, with a Tave integration (5,000 clients) and a
HoneyBook integration (2,000) served by the built-in CRM simulator under /sim/.
Tokens (paste one into the Playground's headers as {"Authorization": "Bearer …"}):
  OWNER    %[3]s
  MEMBER   %[4]s
  SUPPORT  %[5]s

Try:
  curl -s %[1]s/graphql -H 'Authorization: Bearer %[3]s' \
    -H 'Content-Type: application/json' -d '{"query":"{ viewer { role organization { name } } }"}'

Import from the Playground:
  { organization { integrations { nodes { id name lastRun { state processed } } } } }
  mutation { startImport(input: {integrationId: "<id>"}) { run { id state } } }

`, base, seed.OrgName, seed.Tokens[auth.RoleOwner], seed.Tokens[auth.RoleMember], seed.Tokens[auth.RoleSupport])
		},
		mount: func(mux *http.ServeMux) {
			mux.Handle("/sim/", http.StripPrefix("/sim", crmsim.New(crmsim.Config{})))
		},
	})
}

func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// devSecretKey returns the key that seals credentials in dev, made once and
// kept in .data/secret-key.
func devSecretKey() (string, error) {
	path := filepath.Join(devDataDir, "secret-key")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	if err := os.MkdirAll(devDataDir, 0o755); err != nil {
		return "", fmt.Errorf("error creating %s: %w", devDataDir, err)
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("error saving the dev secret key: %w", err)
	}
	return key, nil
}

// demoSeed is what dev prints. The tokens are kept in .data/demo-tokens.json
// because the database holds only their hashes.
type demoSeed struct {
	OrgName string
	Tokens  map[auth.Role]string
}

const (
	demoSlug = "demo"
	demoName = "Demo Studio"
)

// seedDemo creates the demo organization and its tokens the first time, and
// reuses them after; a token that no longer works (revoked, or a database
// that was reset) is replaced.
func seedDemo(ctx context.Context, pool *pgxpool.Pool, sealer *auth.Sealer, simURL string) (*demoSeed, error) {
	q := db.New(pool)
	org, err := q.OrganizationGetBySlug(ctx, demoSlug)
	if errors.Is(err, db.ErrNotFound) {
		org, err = q.OrganizationCreate(ctx, &db.OrganizationCreateParams{Slug: demoSlug, Name: demoName})
	}
	if err != nil {
		return nil, err
	}
	if err := seedDemoIntegrations(ctx, q, sealer, org.ID, simURL); err != nil {
		return nil, err
	}

	path := filepath.Join(devDataDir, "demo-tokens.json")
	tokens := map[auth.Role]string{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &tokens)
	}
	changed := false
	for _, role := range []auth.Role{auth.RoleOwner, auth.RoleMember, auth.RoleSupport} {
		if t, ok := tokens[role]; ok {
			if stored, err := q.APITokenGetActiveByHash(ctx, auth.HashToken(t)); err == nil && tokenFits(stored, role, org.ID) {
				continue
			}
		}
		var orgID *int64
		if role != auth.RoleSupport {
			orgID = &org.ID
		}
		token, _, err := resolvers.CreateToken(ctx, q, orgID, "demo "+strings.ToLower(string(role)), role)
		if err != nil {
			return nil, err
		}
		tokens[role] = token
		changed = true
	}
	if changed {
		b, _ := json.MarshalIndent(tokens, "", "  ")
		if err := os.MkdirAll(devDataDir, 0o755); err != nil {
			return nil, fmt.Errorf("error creating %s: %w", devDataDir, err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("error saving demo tokens: %w", err)
		}
	}
	return &demoSeed{OrgName: org.Name, Tokens: tokens}, nil
}

func tokenFits(t *db.APIToken, role auth.Role, orgID int64) bool {
	if t.Role != string(role) {
		return false
	}
	if role == auth.RoleSupport {
		return t.OrgID == nil
	}
	return t.OrgID != nil && *t.OrgID == orgID
}

// seedDemoIntegrations gives the demo organization a Tave and a HoneyBook
// integration served by the built-in simulator. They are created once; later
// starts only point them at this run's address (and re-seal their
// credentials, should the dev key have changed).
func seedDemoIntegrations(ctx context.Context, q *db.Queries, sealer *auth.Sealer, orgID int64, simURL string) error {
	demos := []struct {
		provider, name, path string
		creds                auth.CRMCredentials
	}{
		{"TAVE", "Tave (demo, 5,000 clients)", "/tave/api/v2", auth.CRMCredentials{APIKey: "demo-5000"}},
		{"HONEYBOOK", "HoneyBook (demo, 2,000 clients)", "/honeybook/api/v3", auth.CRMCredentials{ClientID: "demo-2000", ClientSecret: "demo-secret"}},
	}
	existing, _, err := q.IntegrationList(ctx, orgID, &db.PageParams{Limit: 100})
	if err != nil {
		return err
	}
	for _, d := range demos {
		base := simURL + d.path
		sealed, keyID, err := sealer.SealCredentials(orgID, &d.creds)
		if err != nil {
			return err
		}
		hint := d.creds.Hint()
		var found *db.Integration
		for _, e := range existing {
			if e.Provider == d.provider && e.Name == d.name {
				found = e
			}
		}
		if found == nil {
			_, err = q.IntegrationCreate(ctx, &db.IntegrationCreateParams{
				OrgID: orgID, Provider: d.provider, Name: d.name, BaseURL: &base,
				CredentialsSealed: sealed, CredentialsKeyID: &keyID, CredentialHint: &hint,
			})
		} else {
			_, err = q.IntegrationUpdate(ctx, &db.IntegrationUpdateParams{
				OrgID: orgID, ID: found.ID, BaseURL: &base,
				CredentialsSealed: sealed, CredentialsKeyID: &keyID, CredentialHint: &hint,
			})
		}
		if err != nil {
			return fmt.Errorf("error seeding demo integration %q: %w", d.name, err)
		}
	}
	return nil
}
