// Package store is the cloud's ClickHouse storage: connection, versioned
// schema migrations, the readings schema, the queries the ingest needs and
// the readings repository (Readings: energy reports, device series, latest
// values), and the event logs (EventLog: append, latest per key, one key's
// events, a subject's history, events since a sequence number; a journal
// of the keys each append stored and the owner's snapshots of what it
// holds, so that a start reads what is held and what changed since, not
// the history; Outbox: retry of what could not be stored) that alarms and
// work orders keep and
// commands and resident requests will, and the checks tools make from
// outside (Audit, DropDatabase: the drills, the load generators). No other
// package holds SQL; identifiers are quoted one way, with quoteIdent. (The
// exceptions are tests, and internal/chtest, which creates and drops the
// test databases and cannot import this package, whose own tests use it.)
//
// # Reading rule: duplicates
//
// Delivery is at least once, so the same reading can be inserted more than
// once (a gateway resends a batch whose PUBACK it never saw, the ingest
// restarts before acknowledging a committed batch). Storage makes that
// harmless instead of trying to prevent it:
//
//   - readings is a ReplacingMergeTree(seq) keyed by (company, project,
//     device, metric, ts_ms). Background merges collapse duplicates
//     eventually, never at a known time. Every query of readings MUST
//     therefore read with FINAL, or GROUP BY (company, project, device,
//     metric, ts_ms) taking any(value) or argMax(value, seq). A plain
//     count() or sum() over readings without one of these is wrong.
//   - readings_hourly is filled by the materialized view readings_hourly_mv
//     for every insert, duplicates included. A materialized view sees each
//     insert, not the merged table, so the roll-up holds only aggregates
//     that a duplicate cannot change: min, max, argMin/argMax by ts_ms
//     (first/last value of the hour), min/max of ts_ms, and uniqExact(ts_ms)
//     as the reading count. There is no sum() or count() figure in it on
//     purpose. (n_rows and ts_sum, readings migration 7, are a count and a
//     sum, duplicates included: the hour's version, which every insert
//     changes, for keying what is worked out from the hour's raw readings
//     — never a figure.)
//     Query it with GROUP BY (company, project, device, metric, hour_ms) and
//     the -Merge combinators: minMerge(min_v), maxMerge(max_v),
//     argMinMerge(first_v), minMerge(first_ts), argMaxMerge(last_v),
//     maxMerge(last_ts), uniqExactMerge(n).
//   - events (gateway and device events, gateway status changes) is a
//     ReplacingMergeTree as well; read it with FINAL.
//
// Readings of quality 2 (bad) are stored in readings for diagnosis but left
// out of readings_hourly, so trends and energy reports never see them.
//
// # Server versions
//
// The schema works on ClickHouse 18.16 (what Debian ships) and uses
// LowCardinality columns, compression codecs and an optional TTL on servers
// that have them (see Server). Column names and query-visible types are the
// same on every version, so queries need not care.
//
// # Cluster
//
// With Options.Cluster set, every statement runs ON CLUSTER, the data lives in
// Replicated* tables named <table>_local, and readings, readings_hourly and
// events are Distributed tables over them, sharded by
// cityHash64(company, project, device) so that duplicates of a reading land
// on the same shard, where FINAL and the roll-up's merge functions see them
// together.
package store
