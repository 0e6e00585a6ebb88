package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/plantroom/plantroom/cloud/energy"
)

// stepCacheMax bounds the step summaries kept: about 100 bytes each, so
// 500,000 (three months of 200 devices) take some 50 MB.
const stepCacheMax = 500_000

// stepCache keeps the step summaries of closed roll-up hours: computing one
// reads every raw reading of the hour, and an hour's readings rarely change
// once it is over. An entry holds while the hour's roll-up row is the same
// (readings, first and last reading): a reading added to the hour changes
// its count.
type stepCache struct {
	mu sync.Mutex
	m  map[stepKey]stepEntry
}

type stepKey struct {
	company, device, metric string
	hour                    int64
}

type stepEntry struct {
	row energy.Hour
	st  energy.HourSteps
}

func (c *stepCache) get(k stepKey, row energy.Hour) (energy.HourSteps, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || e.row != row {
		return energy.HourSteps{}, false
	}
	return e.st, true
}

func (c *stepCache) put(k stepKey, row energy.Hour, st energy.HourSteps) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[stepKey]stepEntry{}
	}
	if len(c.m) >= stepCacheMax {
		// Drop a tenth, whichever the map yields first.
		n := stepCacheMax / 10
		for k := range c.m {
			delete(c.m, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.m[k] = stepEntry{row: row, st: st}
}

// Steps implements energy.Readings: the summaries of hours already known
// come from the cache, then from the table counter_steps, and the others
// from CounterSteps over their raw readings (then stored in both). A
// summary is kept only when it counted the readings the roll-up row counts
// (a reading arriving between the two reads is not kept half-seen): the
// raw rows match the row's version (n_rows, ts_sum), or else the roll-up,
// still at that version, holds exactly as many readings (exactCounts). It
// is used only for exactly the roll-up row it was worked out for.
func (s *Readings) Steps(ctx context.Context, w energy.Where, hours map[energy.Key][]energy.Hour) (map[energy.Key][]energy.HourSteps, error) {
	out := map[energy.Key][]energy.HourSteps{}
	asked := map[stepKey]energy.Hour{}
	for k, hs := range hours {
		for _, h := range hs {
			sk := stepKey{w.Company, k.Device, k.Metric, h.Hour}
			if st, ok := s.steps.get(sk, h); ok {
				out[k] = append(out[k], st)
				continue
			}
			asked[sk] = h
		}
	}
	stored, err := s.storedSteps(ctx, w.Company, asked)
	if err != nil {
		return nil, err
	}
	var ranges []StepRange
	for k, hs := range hours {
		for _, h := range hs {
			sk := stepKey{w.Company, k.Device, k.Metric, h.Hour}
			if _, ok := asked[sk]; !ok {
				continue
			}
			if st, ok := stored[sk]; ok {
				s.steps.put(sk, h, st)
				out[k] = append(out[k], st)
				continue
			}
			if n := len(ranges); n > 0 && ranges[n-1].Device == k.Device && ranges[n-1].Metric == k.Metric && ranges[n-1].To == h.Hour {
				ranges[n-1].To = h.Hour + energy.HourMS
			} else {
				ranges = append(ranges, StepRange{Device: k.Device, Metric: k.Metric, From: h.Hour, To: h.Hour + energy.HourMS})
			}
		}
	}
	// Worked out a week at a time, each week stored at once: a report that
	// runs out of time (a month of many devices, the first time) leaves
	// what it worked out for the next attempt.
	for _, piece := range splitWeeks(ranges) {
		rows, err := s.db.CounterSteps(ctx, w.Company, w.Projects, piece, energy.AllowanceSlack)
		if err != nil {
			return nil, err
		}
		keep := map[stepKey]stepEntry{}
		var unsure []StepRow
		for _, r := range rows {
			k := energy.Key{Device: r.Device, Metric: r.Metric}
			st := energy.HourSteps{Hour: r.Hour, N: r.N, Falls: r.Falls, NeedKW: r.NeedKW}
			sk := stepKey{w.Company, r.Device, r.Metric, r.Hour}
			if h, ok := asked[sk]; ok {
				switch {
				case h.N > 0 && h.N == r.N, h.N == 0 && h.Rows > 0 && h.Rows == r.Rows && h.TSSum == r.TSSum:
					keep[sk] = stepEntry{row: h, st: st}
				case h.N == 0 && h.Rows > 0:
					unsure = append(unsure, r)
				}
			}
			out[k] = append(out[k], st)
		}
		// The raw rows differ from the roll-up's version of the hour: a
		// duplicate merged away since, an insert counted twice by the
		// migration, or a reading that arrived between the two reads. The
		// roll-up's exact reading count, read for these hours only, tells:
		// same version as asked and as many readings as summed up.
		if len(unsure) > 0 {
			counts, err := s.exactCounts(ctx, w, unsure)
			if err != nil {
				return nil, err
			}
			for _, r := range unsure {
				sk := stepKey{w.Company, r.Device, r.Metric, r.Hour}
				h := asked[sk]
				if c, ok := counts[sk]; ok && c.Rows == h.Rows && c.TSSum == h.TSSum && c.N == r.N {
					keep[sk] = stepEntry{row: h, st: energy.HourSteps{Hour: r.Hour, N: r.N, Falls: r.Falls, NeedKW: r.NeedKW}}
				}
			}
		}
		for sk, e := range keep {
			s.steps.put(sk, e.row, e.st)
		}
		if err := s.storeSteps(ctx, keep); err != nil {
			return nil, err
		}
	}
	for k, sts := range out {
		slices.SortFunc(sts, func(a, b energy.HourSteps) int { return cmp.Compare(a.Hour, b.Hour) })
		out[k] = sts
	}
	return out, nil
}

// stepWeek is the span of one CounterSteps call in Steps.
const stepWeek = 7 * 24 * energy.HourMS

// splitWeeks cuts ranges (on hour boundaries) at the boundaries of weeks
// since the Unix epoch and groups the pieces by week, in time order.
func splitWeeks(ranges []StepRange) [][]StepRange {
	byWeek := map[int64][]StepRange{}
	var weeks []int64
	for _, r := range ranges {
		for from := r.From; from < r.To; {
			wk := from / stepWeek
			to := min(r.To, (wk+1)*stepWeek)
			if _, ok := byWeek[wk]; !ok {
				weeks = append(weeks, wk)
			}
			byWeek[wk] = append(byWeek[wk], StepRange{Device: r.Device, Metric: r.Metric, From: from, To: to})
			from = to
		}
	}
	slices.Sort(weeks)
	out := make([][]StepRange, len(weeks))
	for i, wk := range weeks {
		out[i] = byWeek[wk]
	}
	return out
}

// hourCounts is a roll-up hour's version and exact reading count.
type hourCounts struct {
	Rows, TSSum int64
	N           int
}

// exactCounts reads, for the hours of rs only, the roll-up's version and
// exact reading count (the uniqExact n that Hours leaves out for its cost).
func (s *Readings) exactCounts(ctx context.Context, w energy.Where, rs []StepRow) (map[stepKey]hourCounts, error) {
	want := map[stepKey]bool{}
	devs, mets := map[string]bool{}, map[string]bool{}
	from, to := rs[0].Hour, rs[0].Hour+energy.HourMS
	for _, r := range rs {
		want[stepKey{w.Company, r.Device, r.Metric, r.Hour}] = true
		devs[r.Device], mets[r.Metric] = true, true
		from, to = min(from, r.Hour), max(to, r.Hour+energy.HourMS)
	}
	q := `SELECT device, metric, hour_ms, toInt64(finalizeAggregation(n_rows)), finalizeAggregation(ts_sum), toInt64(finalizeAggregation(n))
FROM ` + s.table(TableHourly) + ` FINAL
WHERE company = ? AND project IN ? AND device IN ? AND metric IN ? AND hour_ms >= ? AND hour_ms < ?`
	rows, err := s.db.conn.Query(ctx, q, w.Company, groupSet(w.Projects), groupSet(sortedSet(devs)), groupSet(sortedSet(mets)), from, to)
	if err != nil {
		return nil, fmt.Errorf("cannot query reading counts of %d hours: %w", len(rs), err)
	}
	defer rows.Close()
	out := map[stepKey]hourCounts{}
	for rows.Next() {
		var sk stepKey
		var c hourCounts
		var n int64
		if err := rows.Scan(&sk.device, &sk.metric, &sk.hour, &c.Rows, &c.TSSum, &n); err != nil {
			return nil, fmt.Errorf("cannot read reading counts of %d hours: %w", len(rs), err)
		}
		sk.company = w.Company
		if want[sk] {
			c.N = int(n)
			out[sk] = c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read reading counts of %d hours: %w", len(rs), err)
	}
	return out, nil
}
