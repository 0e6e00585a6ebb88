package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// GatewayReading is a stored reading with the gateway that sent it.
type GatewayReading struct {
	Gateway string
	protocol.Reading
}

// RecentReadings reads the readings of metrics stored since since from
// the readings table of conn's default database (with FINAL, so a reading
// stored twice counts once), oldest first: the alarm engine replays them
// at start. Metric names are checked with protocol.CheckMetric before they
// enter the query.
func RecentReadings(ctx context.Context, conn Querier, since time.Time, metrics []string) ([]GatewayReading, error) {
	quoted := make([]string, 0, len(metrics))
	for _, m := range metrics {
		if err := protocol.CheckMetric(m); err != nil {
			return nil, fmt.Errorf("cannot read recent readings: %w", err)
		}
		quoted = append(quoted, "'"+m+"'")
	}
	if len(quoted) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var rows []struct {
		Gateway string  `ch:"gateway"`
		Device  string  `ch:"device"`
		Metric  string  `ch:"metric"`
		TS      int64   `ch:"ts_ms"`
		Value   float64 `ch:"value"`
		Quality uint8   `ch:"quality"`
	}
	q := "SELECT gateway, device, metric, ts_ms, value, quality FROM " + TableReadings +
		" FINAL WHERE ts_ms >= ? AND metric IN (" + strings.Join(quoted, ", ") + ") ORDER BY ts_ms, device, metric"
	if err := conn.Select(ctx, &rows, q, since.UnixMilli()); err != nil {
		return nil, fmt.Errorf("cannot read recent readings: %w", err)
	}
	out := make([]GatewayReading, len(rows))
	for i, r := range rows {
		out[i] = GatewayReading{Gateway: r.Gateway, Reading: protocol.Reading{Device: r.Device, Metric: r.Metric, TS: r.TS, Value: r.Value, Quality: protocol.Quality(r.Quality)}}
	}
	return out, nil
}
