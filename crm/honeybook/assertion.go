package honeybook

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// HS256Assertion returns a Config.ClientAssertionFunc that signs a
// short-lived JWT (RFC 7523: iss and sub are the client id, aud the token
// URL) with HMAC-SHA256 under secret. HoneyBook has not published which
// algorithm it expects; an app with an RSA or EC key writes its own func
// with the same claims.
func HS256Assertion(clientID, tokenURL string, secret []byte) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		var jti [12]byte
		if _, err := rand.Read(jti[:]); err != nil {
			return "", fmt.Errorf("error making jti: %w", err)
		}
		now := time.Now().Unix()
		header, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
		claims, err := json.Marshal(map[string]any{
			"iss": clientID, "sub": clientID, "aud": tokenURL,
			"iat": now, "exp": now + 300, "jti": hex.EncodeToString(jti[:]),
		})
		if err != nil {
			return "", fmt.Errorf("error encoding claims: %w", err)
		}
		signing := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signing))
		return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
	}
}
