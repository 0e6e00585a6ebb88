package energy

import "math"

// PlausiblePower drops power readings (kW) that no load of this device can
// draw: not finite, or above maxKW (when set). Each dropped reading is an
// outlier event, so the device's figure is flagged for review instead of
// billing an impossible kWh.
func PlausiblePower(pts []Point, maxKW float64) (kept []Point, events []Event) {
	kept = pts[:0:0]
	for _, p := range pts {
		if math.IsNaN(p.V) || math.IsInf(p.V, 0) || maxKW > 0 && p.V > maxKW {
			ev := Event{TS: p.TS, PrevTS: p.TS, Cur: p.V, Kind: EventOutlier}
			if len(kept) > 0 {
				ev.PrevTS, ev.Prev = kept[len(kept)-1].TS, kept[len(kept)-1].V
			}
			events = append(events, ev)
			continue
		}
		kept = append(kept, p)
	}
	return kept, events
}
