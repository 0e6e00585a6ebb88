package energy

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// VersionedReadings is a reading store that also tells the roll-up's
// version of what a computation read (cloud/store's Readings).
type VersionedReadings interface {
	Readings
	Versions
}

// Cache computes monthly and HQ reports like MonthlyReport and
// CompanyMonthlyReport, and keeps the computations of months that are over
// in every project's time zone, so that asking again costs one look at
// the roll-up's version instead of the computation.
//
// A kept computation answers only while everything it was worked out from
// is unchanged:
//   - its input: company, every job's devices as configured and its
//     schedule (tariff, calendar, time zone, bounds) — the entry's key;
//   - the readings it read: every hour of every key its store calls
//     depended on, including the readings before and after the month that
//     the counter walk looked at (see recorder), by the hourly roll-up's
//     version of those hours. A late reading, a re-sent or corrected one,
//     in any of them changes the version, and the month is worked out again.
//
// A computation is kept only when the version of a superset of its reads
// did not change while it ran, so it never describes a reading it missed.
// A running month is never kept (its end is now). Entries are bounded in
// number; the least recently used goes first.
type Cache struct {
	src     VersionedReadings
	entries *lru.Cache[string, *cacheEntry] // by jobsKey

	hits, misses, changed, kept atomic.Uint64
}

type cacheEntry struct {
	w       Where
	deps    []Span
	version Version
	// results is nil while the entry only says what to take the version
	// of before the next computation (see compute).
	results []Result
}

// CacheStats counts a Cache's lookups: Hits answered from a kept
// computation; Misses found none; Changed found one whose readings had
// changed since; Kept is how many computations were kept.
type CacheStats struct {
	Hits, Misses, Changed, Kept uint64
	Entries                     int
}

// NewCache keeps up to entries computations of src (at least 1).
func NewCache(src VersionedReadings, entries int) *Cache {
	l, err := lru.New[string, *cacheEntry](max(entries, 1))
	if err != nil {
		panic("BUG: " + err.Error()) // only for a size below 1
	}
	return &Cache{src: src, entries: l}
}

// Stats returns the lookup counts so far.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Changed: c.changed.Load(), Kept: c.kept.Load(), Entries: c.entries.Len()}
}

// MonthlyReport is MonthlyReport over the cache's store.
func (c *Cache) MonthlyReport(ctx context.Context, p *Project, m Month, now time.Time, top int) (*Monthly, error) {
	res, err := computeMonths(ctx, c.src, c, p.Company, []*Project{p}, m, now)
	if err != nil {
		return nil, err
	}
	return buildMonthly(p, m, res[0], top), nil
}

// CompanyMonthlyReport is CompanyMonthlyReport over the cache's store.
func (c *Cache) CompanyMonthlyReport(ctx context.Context, co CompanyRef, ps []*Project, m Month, now time.Time) (*CompanyMonthly, error) {
	return companyMonthly(ctx, c.src, c, co, ps, m, now)
}

// compute is Compute through the cache. The results are shared between
// callers: read them, never change them.
//
// Without a kept computation, it takes the version of pre (a superset of
// what the computation will read in all but unusual cases: every key's
// hours up to an hour past the stretch the computation reads around the
// jobs; or, after an entry said so, what the last computation read),
// computes while recording its reads, then takes the version of those
// reads, of the reads outside pre, and of pre again. The computation is
// kept under the version of its reads when no reading arrived in what it
// read while it ran:
//   - inside pre, the version did not change;
//   - outside pre (a counter's first reading after the month is days
//     away, or there is none), nothing is stored even now: rows are only
//     ever added, so there was nothing when the computation looked either.
//
// Otherwise, when reads fell outside pre, the entry keeps them as the next
// computation's pre.
func (c *Cache) compute(ctx context.Context, company string, jobs []Job) ([]Result, error) {
	key := jobsKey(company, jobs)
	fail := func(err error) ([]Result, error) {
		return nil, fmt.Errorf("cannot compute energy of company %q: %w", company, err)
	}
	w, pre := guess(company, jobs)
	if e, ok := c.entries.Get(key); ok {
		v, err := c.src.Version(ctx, e.w, e.deps)
		if err != nil {
			return fail(err)
		}
		if e.results != nil && v == e.version {
			c.hits.Add(1)
			return e.results, nil
		}
		if e.results != nil {
			c.changed.Add(1)
		} else {
			c.misses.Add(1)
		}
		pre = union(pre, e.deps)
	} else {
		c.misses.Add(1)
	}
	before, err := c.src.Version(ctx, w, pre)
	if err != nil {
		return fail(err)
	}
	rec := newRecorder(c.src)
	res, err := Compute(ctx, rec, company, jobs)
	if err != nil {
		return nil, err
	}
	deps := rec.spans()
	v, err := c.src.Version(ctx, w, deps)
	if err != nil {
		return fail(err)
	}
	var empty bool
	if out := outside(pre, deps); len(out) == 0 {
		empty = true
	} else if ov, err := c.src.Version(ctx, w, out); err != nil {
		return fail(err)
	} else {
		empty = ov == Version{}
	}
	after, err := c.src.Version(ctx, w, pre)
	if err != nil {
		return fail(err)
	}
	switch {
	case empty && after == before:
		c.entries.Add(key, &cacheEntry{w: w, deps: deps, version: v, results: res})
		c.kept.Add(1)
	case !empty:
		c.entries.Add(key, &cacheEntry{w: w, deps: union(pre, deps)})
	}
	return res, nil
}

// guess is where Compute reads jobs' readings, and the hours it reads
// around them: every hour of every key from the beginning up to an hour
// after the stretch it reads around the jobs (Lead), where the first
// reading after it is found when the counter reports steadily.
func guess(company string, jobs []Job) (Where, []Span) {
	w := Where{Company: company}
	seen := map[string]bool{}
	var keys []Key
	to := int64(-1 << 62)
	for _, j := range jobs {
		if !seen[j.Project] {
			seen[j.Project] = true
			w.Projects = append(w.Projects, j.Project)
		}
		to = max(to, j.Schedule.To)
		for _, d := range j.Devices {
			if d.Counter != "" {
				keys = append(keys, Key{d.ID, d.Counter})
			}
			if d.Power != "" {
				keys = append(keys, Key{d.ID, d.Power})
			}
		}
	}
	keys = uniqueKeys(keys)
	sortKeys(keys)
	return w, []Span{{Keys: keys, From: 0, To: ceilHour(to) + Lead.Milliseconds() + HourMS}}
}

// jobsKey names a computation's input.
func jobsKey(company string, jobs []Job) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(company)
	for _, j := range jobs {
		// Every field that Compute reads; the time zone by name (a
		// *time.Location encodes as {}).
		_ = enc.Encode(struct {
			Project  string
			Devices  []Device
			Schedule *Schedule
			Zone     string
		}{j.Project, j.Devices, j.Schedule, j.Schedule.Location.String()})
	}
	return string(h.Sum(nil))
}
