package auth

import (
	"cmp"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUnknownKey is returned when sealed data names a key the Sealer lacks.
var ErrUnknownKey = errors.New("sealed with an unknown key")

// Sealer encrypts CRM credentials with AES-256-GCM. Each sealed value is
// stored with the id of the key that sealed it, so a new key can take over
// while values sealed under the old one still open.
type Sealer struct {
	currentID string
	keys      map[string]cipher.AEAD
}

// NewSealer returns a Sealer that seals with current and opens values sealed
// with current or any of old. Keys are base64 (standard or URL encoding) of
// 32 random bytes, as `openssl rand -base64 32` prints.
func NewSealer(current string, old ...string) (*Sealer, error) {
	s := &Sealer{keys: map[string]cipher.AEAD{}}
	for i, k := range append([]string{current}, old...) {
		id, aead, err := parseKey(k)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			s.currentID = id
		}
		s.keys[id] = aead
	}
	return s, nil
}

func parseKey(k string) (string, cipher.AEAD, error) {
	k = strings.TrimSpace(k)
	raw, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		raw, err = base64.URLEncoding.DecodeString(k)
	}
	if err != nil || len(raw) != 32 {
		return "", nil, errors.New("CRMHUB_SECRET_KEY must be base64 of exactly 32 bytes; make one with: openssl rand -base64 32")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return "", nil, fmt.Errorf("error creating cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return "", nil, fmt.Errorf("error creating GCM: %w", err)
	}
	// The key id is a fingerprint of the key, not the key: safe to store.
	sum := sha256.Sum256(append([]byte("crmhub-key-id:"), raw...))
	return hex.EncodeToString(sum[:4]), aead, nil
}

// KeyID is the id of the key Seal uses.
func (s *Sealer) KeyID() string { return s.currentID }

// Seal encrypts plaintext; aad binds the ciphertext to its row (the
// integration id, say) so it cannot be moved to another one.
func (s *Sealer) Seal(plaintext, aad []byte) (sealed []byte, keyID string) {
	aead := s.keys[s.currentID]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, plaintext, aad), s.currentID
}

// Open decrypts what Seal returned.
func (s *Sealer) Open(sealed []byte, keyID string, aad []byte) ([]byte, error) {
	aead, ok := s.keys[keyID]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, keyID)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed value is too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("error opening sealed value: %w", err)
	}
	return plain, nil
}

// CRMCredentials are what a connector needs to reach a CRM account.
type CRMCredentials struct {
	APIKey       string `json:"apiKey,omitempty"`
	ClientID     string `json:"clientId,omitempty"`
	ClientSecret string `json:"clientSecret,omitempty"`
}

// Hint is the last 4 characters of the API key or client id: enough to tell
// two accounts apart, too little to use.
func (c *CRMCredentials) Hint() string {
	s := cmp.Or(c.APIKey, c.ClientID)
	if len(s) <= 4 {
		return "…"
	}
	return "…" + s[len(s)-4:]
}

func credentialsAAD(orgID int64) []byte {
	return []byte("crmhub-credentials:org:" + strconv.FormatInt(orgID, 10))
}

// SealCredentials seals c for an integration of orgID.
func (s *Sealer) SealCredentials(orgID int64, c *CRMCredentials) (sealed []byte, keyID string, err error) {
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, "", fmt.Errorf("error encoding credentials: %w", err)
	}
	sealed, keyID = s.Seal(plain, credentialsAAD(orgID))
	return sealed, keyID, nil
}

// OpenCredentials opens what SealCredentials sealed for orgID.
func (s *Sealer) OpenCredentials(orgID int64, sealed []byte, keyID string) (*CRMCredentials, error) {
	plain, err := s.Open(sealed, keyID, credentialsAAD(orgID))
	if err != nil {
		return nil, err
	}
	var c CRMCredentials
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("error decoding credentials: %w", err)
	}
	return &c, nil
}
