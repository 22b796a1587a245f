package crmsim

import (
	"fmt"
	"time"
)

// Expectation is what a correct connector reads from a tenant right now:
// tests of the connectors and of the import pipeline check against it
// without keeping fixtures.
type Expectation struct {
	// Total is how many client records the tenant holds (Tave jobs,
	// HoneyBook projects), records created by "+changing" included.
	Total int
	// Messy is how many of them "+messy" broke; a connector rejects each.
	Messy int
	// Good is Total - Messy: the records a connector turns into clients.
	Good int
	// messy lists the broken indexes; small (2% of Total).
	messy map[int]string
}

// IsMessy reports whether record i is broken, and how ("invalid email").
func (e Expectation) IsMessy(i int) (string, bool) {
	r, ok := e.messy[i]
	return r, ok
}

// Expect returns what the credential's tenant holds at the simulator's
// current time. It walks the tenant's indexes once (about a millisecond per
// hundred thousand records) and allocates only for the messy ones.
func (s *Simulator) Expect(credential string) (Expectation, error) {
	t, err := s.parseCredential(credential)
	if err != nil {
		return Expectation{}, fmt.Errorf("error parsing credential: %w", err)
	}
	v := s.view(t)
	e := Expectation{Total: v.total, messy: map[int]string{}}
	for i := range v.total {
		if k := v.messKind(i); k != messNone {
			e.messy[i] = k.String()
		}
	}
	e.Messy = len(e.messy)
	e.Good = e.Total - e.Messy
	return e, nil
}

// ModifiedSince returns the indexes of the tenant's records whose Tave
// modified stamp is after since, newest first: what an INCREMENTAL Tave
// read with that watermark must return (rejects included).
func (s *Simulator) ModifiedSince(credential string, since time.Time) ([]int, error) {
	t, err := s.parseCredential(credential)
	if err != nil {
		return nil, fmt.Errorf("error parsing credential: %w", err)
	}
	v := s.view(t)
	var out []int
	for from := 0; from < v.total; from += 1000 {
		for _, i := range v.byModifiedDesc(from, min(1000, v.total-from)) {
			if !v.modified(i).After(since) {
				return out, nil
			}
			out = append(out, i)
		}
	}
	return out, nil
}

// CreatedSince returns the indexes of the tenant's records created after
// since, oldest first: what an INCREMENTAL HoneyBook read with that
// watermark must return.
func (s *Simulator) CreatedSince(credential string, since time.Time) ([]int, error) {
	t, err := s.parseCredential(credential)
	if err != nil {
		return nil, fmt.Errorf("error parsing credential: %w", err)
	}
	v := s.view(t)
	var out []int
	for i := v.firstCreatedAfter(since); i < v.total; i++ {
		out = append(out, i)
	}
	return out, nil
}

// Expect is (*Simulator).Expect for a simulator with the default Config: a
// shortcut for tests that do not change the Config. Tenants with
// "+changing" depend on the clock, so use the simulator's own method there.
func Expect(credential string) (Expectation, error) {
	return New(Config{}).Expect(credential)
}

// ExpectedClients is how many clients a connector returns for the
// credential under the default Config (Expect(credential).Good), or -1 for
// a credential that is not a simulator tenant.
func ExpectedClients(credential string) int {
	e, err := Expect(credential)
	if err != nil {
		return -1
	}
	return e.Good
}
