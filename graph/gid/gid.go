// Package gid encodes and decodes crmhub's global GraphQL ids: base64url of
// "Type:rowid". Clients treat them as opaque; the server checks the type on
// the way in. It is a leaf package so that row types can render their own
// id without a resolver.
package gid

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// ErrMalformed is returned for a string that is not a global id.
var ErrMalformed = errors.New("malformed id")

// Encode returns the global id of row id of type typ.
func Encode(typ string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + strconv.FormatInt(id, 10)))
}

// Decode returns the type and row id of a global id.
func Decode(s string) (typ string, id int64, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", 0, ErrMalformed
	}
	typ, num, ok := strings.Cut(string(raw), ":")
	id, err = strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || id <= 0 {
		return "", 0, ErrMalformed
	}
	return typ, id, nil
}
