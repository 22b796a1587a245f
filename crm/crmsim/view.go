package crmsim

import (
	"sort"
	"time"
)

// view is one tenant at one moment: how many records exist and when each
// was created and last modified. It is a handful of numbers.
//
// "+changing" works in ticks of ChangeInterval from ChangeEpoch. Each tick
// creates CreatedPerInterval records (appended after the base ones) and
// changes ChangedPerInterval base records, sweeping through them in index
// order and wrapping around; change number p touches base record p mod n.
// That makes every record's last change, and the order of all records by
// modified stamp, computable without storing anything.
type view struct {
	t       tenant
	n       int // base records
	k       int // ticks elapsed
	m, a    int // changed and created per tick
	total   int
	start   time.Time
	step    time.Duration
	epoch   time.Time
	tick    time.Duration
	asOf    time.Time
	permill int
}

const historySpan = 4 * 365 * 24 * time.Hour

func (s *Simulator) view(t tenant) view {
	v := view{t: t, n: t.n, epoch: s.cfg.ChangeEpoch, tick: s.cfg.ChangeInterval, asOf: s.cfg.DataAsOf, permill: s.cfg.MessyPermille}
	v.start = v.asOf.Add(-historySpan)
	v.step = (historySpan / time.Duration(max(v.n, 1))).Truncate(time.Second)
	if t.changing {
		if now := s.cfg.NowFunc(); now.After(v.epoch) {
			v.k = int(now.Sub(v.epoch) / v.tick)
		}
		v.m = min(s.cfg.ChangedPerInterval, v.n)
		v.a = s.cfg.CreatedPerInterval
	}
	v.total = v.n + v.k*v.a
	return v
}

func (v view) created(i int) time.Time {
	if i < v.n {
		return v.start.Add(time.Duration(i) * v.step)
	}
	return v.epoch.Add(time.Duration((i-v.n)/v.a+1) * v.tick)
}

// version is the tick in which base record i last changed, or 0.
func (v view) version(i int) int {
	s := v.k * v.m
	if i >= v.n || s <= i {
		return 0
	}
	p := i + v.n*((s-1-i)/v.n)
	return p/v.m + 1
}

func (v view) modified(i int) time.Time {
	if ver := v.version(i); ver > 0 {
		return v.epoch.Add(time.Duration(ver) * v.tick)
	}
	if i < v.n {
		return v.created(i).Add(v.step / 2)
	}
	return v.created(i)
}

// byModifiedDesc returns up to count record indexes starting at position
// from in the order newest modified first (ties: highest index first).
func (v view) byModifiedDesc(from, count int) []int {
	out := make([]int, 0, count)
	s := v.k * v.m
	oldest := max(s-v.n, 0) // change numbers below this are superseded
	q := 0
	emit := func(i int) bool {
		if q >= from {
			out = append(out, i)
		}
		q++
		return len(out) < count
	}
	for tk := v.k; tk >= 1; tk-- {
		hiP := min(tk*v.m, s)
		loP := max((tk-1)*v.m, oldest)
		size := v.a + max(hiP-loP, 0)
		if q+size <= from {
			q += size
			continue
		}
		for j := v.a - 1; j >= 0; j-- {
			if !emit(v.n + (tk-1)*v.a + j) {
				return out
			}
		}
		for p := hiP - 1; p >= loP; p-- {
			if !emit(p % v.n) {
				return out
			}
		}
	}
	// Base records never changed: indexes s..n-1, newest first.
	lo, i := min(s, v.n), v.n-1
	if from > q {
		i -= from - q
		q = from
	}
	for ; i >= lo; i-- {
		if !emit(i) {
			return out
		}
	}
	return out
}

// firstCreatedAfter is the lowest index created strictly after t; creation
// order is index order.
func (v view) firstCreatedAfter(t time.Time) int {
	return sort.Search(v.total, func(i int) bool { return v.created(i).After(t) })
}

// firstCreatedFrom is the lowest index created at or after t.
func (v view) firstCreatedFrom(t time.Time) int {
	return sort.Search(v.total, func(i int) bool { return !v.created(i).Before(t) })
}

func (v view) messKind(i int) messKind {
	if !v.t.messy || hash64(i, 5)%1000 >= uint64(v.permill) {
		return messNone
	}
	return messKind(1 + hash64(i, 6)%4)
}

// record builds record i as it stands in this view.
func (v view) record(i int) record {
	h := hash64(i, 1)
	r := record{index: i, version: v.version(i), created: v.created(i), modified: v.modified(i)}
	r.inquiry = r.created
	shareLast := (h>>36)%3 == 0
	r.partners[1] = makePerson(i, 1, false, "")
	r.partners[0] = makePerson(i, 0, shareLast, r.partners[1].last)
	if shareLast {
		r.partners[0].maiden = makePerson(i, 0, false, "").last
	}
	r.eventDate = eventDateFor(hash64(i, 2), r.inquiry)
	r.venue = pick(venues, h>>4)
	r.jobType = pick(jobTypes, h>>12)
	r.leadSource = pick(leadSources, h>>20)
	r.value = 250_000 + int64((h>>28)%19)*50_000
	r.guestCount = 40 + int((h>>44)%200)
	roll := (h >> 52) % 100
	asOf := v.asOf
	if i >= v.n {
		asOf = r.created
	}
	switch {
	case r.eventDate.Before(asOf.AddDate(0, -2, 0)):
		r.stage = "completed"
		if roll < 8 {
			r.stage, r.closed = "lead", true
		}
	case r.eventDate.Before(asOf):
		r.stage = "fulfillment"
	case roll < 40:
		r.stage = "lead"
	case roll < 95:
		r.stage = "booked"
	default:
		r.stage, r.closed = "lead", true
	}
	if r.stage != "lead" {
		r.booked = r.inquiry.Add(time.Duration(1+(h>>8)%40) * 24 * time.Hour)
	}
	if r.version > 0 {
		// A change moves a lead to booked and touches the numbers, as a real
		// vendor's edits would.
		if r.stage == "lead" && !r.closed {
			r.stage = "booked"
			r.booked = v.epoch.Add(time.Duration(r.version) * v.tick)
		}
		r.guestCount += 5 * (r.version%7 + 1)
		r.value += int64(r.version%5+1) * 10_000
	}
	r.mess = v.messKind(i)
	switch r.mess {
	case messNoIdentity:
		for p := range r.partners {
			r.partners[p] = person{}
		}
	case messBadEmail:
		r.partners[0].email = r.partners[0].first + "@@" + "gmail"
	case messBadDate:
		r.eventDateRaw = r.eventDate.Format("2006") + "-02-30"
	}
	return r
}
