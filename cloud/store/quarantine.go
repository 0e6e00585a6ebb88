package store

import (
	"context"
	"fmt"
)

// TableQuarantine keeps the readings and events ClickHouse refused to store
// (a permanent error, see Refused), one row each, with the cause and the
// server's message, so that the rest of their batches could be stored and
// acknowledged. Nothing reads it but people: after fixing what refused the
// rows, an operator may copy them back (docs/troubleshooting.md).
const TableQuarantine = "quarantine"

// ComponentQuarantine is the migration component of the quarantine table.
const ComponentQuarantine = "quarantine"

// Kinds of quarantined rows.
const (
	QuarantineReading = "reading"
	QuarantineEvent   = "event"
)

// QuarantineColumns is the column list of quarantine in insert order.
const QuarantineColumns = "company, project, gateway, epoch, seq, kind, device, metric, ts_ms, value, quality, message, attrs, cause, error, isolated, quarantined_ms"

var quarantineCols = []column{
	{name: "company", typ: "String", lowCard: true},
	{name: "project", typ: "String", lowCard: true},
	{name: "gateway", typ: "String", lowCard: true},
	{name: "epoch", typ: "UInt64"},
	{name: "seq", typ: "UInt64"},
	{name: "kind", typ: "String", lowCard: true}, // reading, event
	{name: "device", typ: "String"},
	{name: "metric", typ: "String"}, // an event's kind for events
	{name: "ts_ms", typ: "Int64"},
	{name: "value", typ: "Float64"},
	{name: "quality", typ: "UInt8"},
	{name: "message", typ: "String", codec: "ZSTD(1)"},
	{name: "attrs", typ: "String", codec: "ZSTD(1)"},
	{name: "cause", typ: "String", lowCard: true},
	{name: "error", typ: "String", codec: "ZSTD(1)"},
	{name: "isolated", typ: "UInt8"}, // 1: this row alone was refused; 0: refused with others (see QuarantineRow)
	{name: "quarantined_ms", typ: "Int64"},
}

func quarantineDDL(s Server, db string) []string {
	t := table{
		name: TableQuarantine, cols: quarantineCols,
		engine:    "ReplacingMergeTree",
		partition: "toYYYYMM(toDateTime(intDiv(quarantined_ms, 1000)))",
		orderBy:   "company, project, gateway, epoch, seq, kind, device, metric, ts_ms",
		shardKey:  "cityHash64(company, project, gateway)",
	}
	return t.ddl(s, db)
}

// QuarantineRow is one refused reading or event.
type QuarantineRow struct {
	Company, Project, Gateway string
	Epoch, Seq                uint64 // the telemetry batch's; an event's own seq
	Kind                      string // QuarantineReading or QuarantineEvent
	Device                    string
	Metric                    string // a reading's metric, an event's kind
	TS                        int64
	Value                     float64
	Quality                   uint8
	Message, Attrs            string // events
	Cause                     string // from Refused
	Error                     string // the server's message
	// Isolated is true when this row was refused on its own; false when
	// the search for the refused rows ran out of attempts and the row
	// came along with the range it was in (it may be good).
	Isolated      bool
	QuarantinedMs int64
}

// InsertQuarantine stores refused rows in one INSERT.
func (db *DB) InsertQuarantine(ctx context.Context, rows []QuarantineRow) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := db.conn.PrepareBatch(ctx, "INSERT INTO "+quoteIdent(db.Database())+"."+TableQuarantine+" ("+QuarantineColumns+")")
	if err != nil {
		return fmt.Errorf("cannot quarantine %d rows: %w", len(rows), err)
	}
	defer batch.Close()
	for _, r := range rows {
		var isolated uint8
		if r.Isolated {
			isolated = 1
		}
		if err := batch.Append(r.Company, r.Project, r.Gateway, r.Epoch, r.Seq, r.Kind, r.Device, r.Metric,
			r.TS, r.Value, r.Quality, r.Message, r.Attrs, r.Cause, r.Error, isolated, r.QuarantinedMs); err != nil {
			return fmt.Errorf("cannot quarantine %d rows: %w", len(rows), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot quarantine %d rows: %w", len(rows), err)
	}
	return nil
}
