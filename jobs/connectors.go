package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/crm/csvfile"
	"github.com/wedsync/crmhub/crm/honeybook"
	"github.com/wedsync/crmhub/crm/tave"
	"github.com/wedsync/crmhub/db"
)

// ConnectorInput is what a connector is built from.
type ConnectorInput struct {
	Integration *db.Integration
	// Credentials are the opened credentials; nil for file providers.
	Credentials *auth.CRMCredentials
	Run         *db.ImportRun
	// OpenFile opens the run's uploaded file (FILE runs only).
	OpenFile func() (io.ReadCloser, error)
}

// ConnectorFunc builds the connector an import reads from.
type ConnectorFunc func(ctx context.Context, in *ConnectorInput) (crm.Connector, error)

// ConnectorOptions tune the real connectors. The zero value is production's.
type ConnectorOptions struct {
	// HTTP tunes timeouts and retries.
	HTTP crm.HTTPPolicy
	// RequestsPerMinute overrides each provider's client-side rate limit
	// (Tave 100, HoneyBook 300): 0 keeps the provider's, -1 means no limit
	// (the local simulator has no quota unless a tenant asks for one).
	RequestsPerMinute int
}

// NewConnector builds the real connector of an integration's provider.
func NewConnector(opts ConnectorOptions) ConnectorFunc {
	policy := opts.HTTP
	return func(ctx context.Context, in *ConnectorInput) (crm.Connector, error) {
		integ := in.Integration
		if in.Run.Mode == "FILE" {
			if in.OpenFile == nil || in.Run.FileFormat == nil {
				return nil, fmt.Errorf("%w: the run has no file", crm.ErrBadFile)
			}
			var mapping map[string]string
			if len(in.Run.ColumnMapping) > 0 {
				if err := json.Unmarshal(in.Run.ColumnMapping, &mapping); err != nil {
					return nil, fmt.Errorf("%w: unreadable column mapping: %v", crm.ErrBadFile, err)
				}
			}
			conn, err := csvfile.New(in.OpenFile, csvfile.Format(*in.Run.FileFormat), mapping)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", crm.ErrBadFile, err)
			}
			return conn, nil
		}
		if in.Credentials == nil {
			return nil, fmt.Errorf("%w: the integration has no credentials", crm.ErrAuth)
		}
		base := ""
		if integ.BaseURL != nil {
			base = *integ.BaseURL
		}
		switch integ.Provider {
		case "TAVE":
			return tave.New(tave.Config{BaseURL: base, APIKey: in.Credentials.APIKey, HTTP: policy, RequestsPerMinute: opts.RequestsPerMinute})
		case "HONEYBOOK":
			cfg := honeybook.Config{BaseURL: base, ClientID: in.Credentials.ClientID, ClientSecret: in.Credentials.ClientSecret, HTTP: policy, RequestsPerMinute: opts.RequestsPerMinute}
			if base != "" {
				// A base URL override (a sandbox, the simulator) brings its
				// own token endpoint beside the API root.
				cfg.TokenURL = strings.TrimSuffix(base, "/api/v3") + "/oauth2/token"
			}
			return honeybook.New(cfg)
		default:
			return nil, fmt.Errorf("%w: %s integrations import files only: use importFile", crm.ErrInvalidRequest, integ.Provider)
		}
	}
}

// ValidateFileImport checks a file format and column mapping before a file
// is stored, so a bad mapping is the caller's error at once instead of a
// FAILED run later.
func ValidateFileImport(format string, mapping map[string]string) error {
	_, err := csvfile.New(func() (io.ReadCloser, error) { return nil, io.EOF }, csvfile.Format(format), mapping)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "invalid csv config: "))
	}
	return nil
}
