package main

import (
	"context"
	"net/http"
	"time"

	"github.com/plantroom/plantroom/internal/promtext"
)

// Metrics is one scrape of a Prometheus text endpoint.
type Metrics = promtext.Metrics

// httpClient is the drills' client for the cloud's and the edge's HTTP
// endpoints.
var httpClient = &http.Client{Timeout: 5 * time.Second}

// scrape reads GET http://addr/metrics.
func scrape(ctx context.Context, addr string) (*Metrics, error) {
	return promtext.Scrape(ctx, "http://"+addr+"/metrics")
}

// Metric names the drills read. Edge agent: edge/agent/metrics.go and
// edge/uplink/metrics.go; cloud: docs/cloud.md.
const (
	mEdgeCommitted    = "plantroom_edge_queue_committed_readings_total"
	mEdgeDropped      = "plantroom_edge_queue_dropped_readings_total"
	mEdgeDroppedSent  = "plantroom_edge_queue_dropped_sent_readings_total"
	mEdgeQueueItems   = "plantroom_edge_queue_items"
	mEdgeQueueBytes   = "plantroom_edge_queue_bytes"
	mEdgeQueueRead    = "plantroom_edge_queue_readings" // {state=live|backlog|inflight}
	mEdgeRejected     = "plantroom_edge_readings_rejected_total"
	mEdgeConnected    = "plantroom_edge_uplink_connected"
	mEdgeResent       = "plantroom_edge_uplink_resent_batches_total"
	mEdgePublished    = "plantroom_edge_uplink_readings_published_total" // {lane=live|backlog}
	mIngestMessages   = "plantroom_ingest_messages_total"                // {kind=telemetry|status|events}
	mIngestReadings   = "plantroom_ingest_readings_total"                // committed, redeliveries included
	mIngestUnacked    = "plantroom_ingest_unacked_messages"
	mIngestConnected  = "plantroom_ingest_mqtt_connected"
	mIngestDupBatches = "plantroom_ingest_duplicate_batches_total"
	mIngestCHErrors   = "plantroom_ingest_clickhouse_errors_total"
	mIngestRejected   = "plantroom_ingest_readings_rejected_total"
	mIngestMsgReject  = "plantroom_ingest_messages_rejected_total"
)
