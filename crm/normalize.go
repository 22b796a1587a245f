package crm

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
)

// NormalizeEmail trims an email address and lower-cases it. It returns "" and
// no error for an empty address, and an error saying what is wrong for one
// that is not a plain addr-spec ("anna@@example.com", "Anna <a@b.c>").
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", fmt.Errorf("invalid email %q", Truncate(s, 80))
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || !strings.Contains(s[at+1:], ".") || strings.HasSuffix(s, ".") {
		return "", fmt.Errorf("invalid email %q", Truncate(s, 80))
	}
	return strings.ToLower(s), nil
}

// NormalizePhone returns a phone number in E.164 ("+14155550123"). A number
// that starts with "+" or "00" is taken as international; any other is
// national and gets defaultCountryCode (digits only, "1" or "44"), dropping a
// national trunk "0" first. It returns "" for an empty number and an error for
// one that cannot be a phone number.
func NormalizePhone(s, defaultCountryCode string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	// Drop an extension: "x123", "ext. 123".
	if i := strings.IndexFunc(s, func(r rune) bool { return r == 'x' || r == 'X' || r == 'e' || r == 'E' }); i > 0 {
		s = s[:i]
	}
	international := strings.HasPrefix(s, "+")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' || r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/' || unicode.IsSpace(r):
		default:
			return "", fmt.Errorf("invalid phone %q", Truncate(s, 40))
		}
	}
	digits := b.String()
	if !international && strings.HasPrefix(digits, "00") {
		digits, international = digits[2:], true
	}
	if !international {
		cc := strings.TrimPrefix(defaultCountryCode, "+")
		switch {
		case cc == "1" && len(digits) == 11 && digits[0] == '1':
			digits = digits[1:]
		case cc != "1":
			digits = strings.TrimPrefix(digits, "0")
		}
		digits = cc + digits
	}
	if len(digits) < 8 || len(digits) > 15 || digits[0] == '0' {
		return "", fmt.Errorf("invalid phone %q", Truncate(s, 40))
	}
	return "+" + digits, nil
}

// ParseDate parses a calendar date in the first of layouts that fits and
// returns it at midnight UTC. It rejects impossible dates ("2024-02-30").
func ParseDate(s string, layouts ...string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty date")
	}
	for _, l := range layouts {
		t, err := time.Parse(l, s)
		if err == nil {
			y, m, d := t.Date()
			return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
		}
	}
	return time.Time{}, fmt.Errorf("unparseable date %q", Truncate(s, 40))
}

// ErrNoIdentity is the reason for rejecting a record that has neither a name
// nor an email: there is nothing a vendor could recognise it by.
var ErrNoIdentity = errors.New("missing name and email")

// Validate checks what every normalised client must have: a name or an
// email. Connectors call it last, after their own field checks.
func (c *Client) Validate() error {
	if strings.TrimSpace(c.FirstName) == "" && strings.TrimSpace(c.LastName) == "" &&
		strings.TrimSpace(c.PartnerFirstName) == "" && strings.TrimSpace(c.PartnerLastName) == "" &&
		c.EmailNormalized == "" {
		return ErrNoIdentity
	}
	return nil
}

// DisplayName is how a vendor would name the couple: "Olivia Bennett & James
// Carter", "Olivia & James Bennett" when they share a last name, or the email
// when there is no name.
func (c *Client) DisplayName() string {
	first := strings.TrimSpace(c.FirstName + " " + c.LastName)
	partner := strings.TrimSpace(c.PartnerFirstName + " " + c.PartnerLastName)
	switch {
	case first != "" && partner != "" && c.LastName != "" && c.LastName == c.PartnerLastName:
		return c.FirstName + " & " + c.PartnerFirstName + " " + c.LastName
	case first != "" && partner != "":
		return first + " & " + partner
	case first != "":
		return first
	case partner != "":
		return partner
	}
	return c.Email
}

// Truncate shortens s to at most n bytes (never splitting a character) and
// marks the cut with "…": for quoting CRM data in reasons and errors.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
