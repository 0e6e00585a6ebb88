// Package report decides which readings the edge agent sends
// (report by exception): deadbands, heartbeats and counters.
package report
