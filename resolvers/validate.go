package resolvers

import (
	"net/url"
	"strings"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/graph/model"
)

func validName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 200 {
		return "", errBadInput("name must be 1 to 200 characters")
	}
	return s, nil
}

// validBaseURL accepts an absolute http(s) URL without credentials in it.
func validBaseURL(s string) (*string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(s) > 500 {
		return nil, errBadInput("baseUrl must be an absolute http(s) URL like https://workspace.vsco.co/api/v2")
	}
	out := strings.TrimRight(u.String(), "/")
	return &out, nil
}

func validAutoSync(v *int) (*int32, error) {
	if v == nil {
		return nil, nil
	}
	if *v < 5 || *v > 10080 {
		return nil, errBadInput("autoSyncMinutes must be between 5 and 10080 (a week)")
	}
	m := int32(*v)
	return &m, nil
}

// validCredentials checks that a provider gets what it needs: Tave an API
// key, HoneyBook a client id and secret; file providers none. required says
// whether an API provider must have them now.
func validCredentials(p model.Provider, in *model.CredentialsInput, required bool) (*auth.CRMCredentials, error) {
	str := func(s *string) string {
		if s == nil {
			return ""
		}
		return strings.TrimSpace(*s)
	}
	var c auth.CRMCredentials
	if in != nil {
		c = auth.CRMCredentials{APIKey: str(in.APIKey), ClientID: str(in.ClientID), ClientSecret: str(in.ClientSecret)}
	}
	for _, v := range []string{c.APIKey, c.ClientID, c.ClientSecret} {
		if len(v) > 1000 {
			return nil, errBadInput("credentials are too long")
		}
	}
	switch p {
	case model.ProviderTave:
		if c.APIKey == "" {
			if !required && in == nil {
				return nil, nil
			}
			return nil, errBadInput("a TAVE integration needs credentials.apiKey")
		}
		return &auth.CRMCredentials{APIKey: c.APIKey}, nil
	case model.ProviderHoneybook:
		if c.ClientID == "" || c.ClientSecret == "" {
			if !required && in == nil {
				return nil, nil
			}
			return nil, errBadInput("a HONEYBOOK integration needs credentials.clientId and credentials.clientSecret")
		}
		return &auth.CRMCredentials{ClientID: c.ClientID, ClientSecret: c.ClientSecret}, nil
	default:
		if c != (auth.CRMCredentials{}) {
			return nil, errBadInput(string(p) + " integrations import files and take no credentials")
		}
		return nil, nil
	}
}
