package energy

import "time"

// GapPolls is N in the gap rule: a gap is a stretch without readings longer
// than N poll intervals, and never shorter than MinGap.
const GapPolls = 3

// MinGap is the shortest stretch reported as a gap. Hourly roll-ups see
// every stretch longer than an hour exactly (it always crosses an hour
// boundary); shorter outages show in completeness only when whole hours go
// missing, and their energy is spread by the interpolation anyway.
const MinGap = time.Hour

// GapThreshold is the gap threshold for a device polled every poll.
func GapThreshold(poll time.Duration) time.Duration {
	return max(GapPolls*poll, MinGap)
}

// Gap is a stretch of a period without readings of a device's energy metric.
type Gap struct {
	From, To int64 // Unix ms, clipped to the period
	// Interpolated: there are readings on both sides, so the gap's energy
	// is known and spread evenly over it (an estimate of when it was used).
	// Otherwise the energy of the stretch is unknown and not counted.
	Interpolated bool
}

// FindGaps lists the stretches of [from, to) longer than threshold (ms)
// without a reading, given every reading time around the period (sorted).
func FindGaps(times []int64, from, to, threshold int64) []Gap {
	if to <= from {
		return nil
	}
	if len(times) == 0 {
		if to-from > threshold {
			return []Gap{{From: from, To: to}}
		}
		return nil
	}
	var gaps []Gap
	if first := times[0]; first > from && first-from > threshold {
		gaps = append(gaps, Gap{From: from, To: min(first, to)})
	}
	for i := 1; i < len(times); i++ {
		p, q := times[i-1], times[i]
		if q-p > threshold && q > from && p < to {
			gaps = append(gaps, Gap{From: max(p, from), To: min(q, to), Interpolated: true})
		}
	}
	if last := times[len(times)-1]; last < to && to-last > threshold {
		gaps = append(gaps, Gap{From: max(last, from), To: to})
	}
	return gaps
}
