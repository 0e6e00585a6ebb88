package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/plantroom/plantroom/cloud/energy"
)

var _ energy.Versions = (*Readings)(nil)

// Version implements energy.Versions: the rows inserted into the hourly
// roll-up for the spans' hours (readings migration 7's n_rows, duplicates
// included) and the sum of their timestamps (ts_sum), over w's projects.
// It reads no roll-up figures and needs no FINAL: the states of an hour's
// unmerged rows add up to the merged row's. A span's keys select by device
// and by metric separately (a superset: more rows can only make the
// version change more often).
func (s *Readings) Version(ctx context.Context, w energy.Where, spans []energy.Span) (energy.Version, error) {
	var v energy.Version
	if len(w.Projects) == 0 || len(spans) == 0 {
		return v, nil
	}
	var cond strings.Builder
	args := []any{w.Company, groupSet(w.Projects)}
	lo, hi := int64(energy.NoEnd), int64(0)
	for i, sp := range spans {
		if i > 0 {
			cond.WriteString(" OR ")
		}
		devs, mets := map[string]bool{}, map[string]bool{}
		for _, k := range sp.Keys {
			devs[k.Device], mets[k.Metric] = true, true
		}
		cond.WriteString("(device IN ? AND metric IN ? AND hour_ms >= ? AND hour_ms < ?)")
		args = append(args, groupSet(sortedSet(devs)), groupSet(sortedSet(mets)), sp.From, sp.To)
		lo, hi = min(lo, sp.From), max(hi, sp.To)
	}
	// The outer bounds let the server skip partitions and key ranges.
	q := `SELECT toInt64(countMerge(n_rows)), sumMerge(ts_sum) FROM ` + s.table(TableHourly) + `
WHERE company = ? AND project IN ? AND hour_ms >= ? AND hour_ms < ? AND (` + cond.String() + `)`
	args = append(args[:2:2], append([]any{lo, hi}, args[2:]...)...)
	if err := s.db.conn.QueryRow(ctx, q, args...).Scan(&v.Rows, &v.TSSum); err != nil {
		return v, fmt.Errorf("cannot read the roll-up's version of %d spans of company %q: %w", len(spans), w.Company, err)
	}
	return v, nil
}
