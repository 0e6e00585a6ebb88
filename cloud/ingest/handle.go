package ingest

import (
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Rejection causes of the ingest's own (besides protocol.Cause's).
const (
	CauseUnknownGateway  = "unknown_gateway"  // topic names a gateway not in the org
	CauseWrongProject    = "wrong_project"    // topic's company/project is not the gateway's
	CauseGatewayMismatch = "gateway_mismatch" // payload's gateway is not the topic's
	CauseUnknownDevice   = "unknown_device"   // reading or event of a device the gateway does not have
	CauseFuture          = "future"           // reading further in the future than max_future_skew
	CauseTooOld          = "too_old"          // reading older than max_age
	CauseUnknownMetric   = "unknown_metric"   // metric the device's template does not declare
	// CauseOutOfRange marks readings kept with bad quality: outside the
	// valid range of their template's point (never a rejection).
	CauseOutOfRange = "out_of_range"
	// CauseGatewayBad marks readings the gateway sent with bad quality
	// that the cloud finds no cause of its own for (the edge agent marks a
	// value outside the range of its own template).
	CauseGatewayBad = "gateway"
)

// item is one accepted message (or an event the ingest derived) on its way
// to ClickHouse.
type item struct {
	ack     func() // nil for derived events
	kind    protocol.Kind
	commit  int // telemetry: batchNew, batchDuplicate or batchConflict once resolved
	gw      config.GatewayInfo
	batch   *protocol.Batch
	causes  []string // telemetry: why each reading of batch has bad quality ("" for good ones); nil when none is bad
	status  protocol.Status
	event   protocol.Event
	store   bool // status: a live change (not the retained copy replayed on subscribe)
	refused bool // status or event: ClickHouse refused its row (quarantined)
	arrived time.Time
}

// orgIndex finds gateways and their devices quickly.
type orgIndex struct {
	gateways map[string]config.GatewayInfo
	devices  map[string]map[string]bool // gateway → device ids
	// templates: device → its template; nil when metrics are not checked.
	templates map[string]*config.Template
}

func newOrgIndex(org *config.Org, ts config.Templates) orgIndex {
	x := orgIndex{gateways: map[string]config.GatewayInfo{}, devices: map[string]map[string]bool{}}
	if ts != nil {
		x.templates = map[string]*config.Template{}
		for _, d := range org.Devices() {
			x.templates[d.Device.ID] = ts[d.Device.Template]
		}
	}
	for ci := range org.Companies {
		c := &org.Companies[ci]
		for pi := range c.Projects {
			p := &c.Projects[pi]
			for gi := range p.Gateways {
				g := &p.Gateways[gi]
				x.gateways[g.ID] = config.GatewayInfo{Company: c, Project: p, Gateway: g}
				devs := map[string]bool{}
				for _, d := range g.Devices {
					devs[d.ID] = true
				}
				x.devices[g.ID] = devs
			}
		}
	}
	return x
}

type rejection struct {
	cause string
	err   error
}

func (r *rejection) Error() string { return r.err.Error() }

func reject(cause string, err error) error { return &rejection{cause: cause, err: err} }

// handle is paho's message handler. It runs in its own goroutine per
// message and blocks while MaxUnacked messages are held.
func (in *Ingest) handle(m paho.Message) {
	select {
	case in.slots <- struct{}{}:
	case <-in.stopping:
		return // not acknowledged: the broker delivers it again
	}
	in.metrics.unacked.Inc()
	release := func() {
		<-in.slots
		in.metrics.unacked.Dec()
	}
	ack := func() {
		m.Ack()
		release()
	}
	it, err := in.decode(m.Topic(), m.Payload(), m.Retained(), time.UnixMilli(time.Now().UnixMilli())) // ms, as stored
	if err != nil {
		in.rejected(m.Topic(), err)
		ack()
		return
	}
	if it == nil { // a redelivery already committed, or nothing left to store
		ack()
		return
	}
	it.ack = ack
	if !in.writer.add(it) {
		release() // stopping: left unacknowledged
	}
}

func (in *Ingest) rejected(topic string, err error) {
	cause := protocol.Cause(err)
	var r *rejection
	if errors.As(err, &r) {
		cause = r.cause
	}
	in.metrics.rejectedMessages.WithLabelValues(cause).Inc()
	if in.rejects.first("message/" + cause) {
		in.log.Warn("rejected MQTT message; further rejections for this cause are only counted",
			"cause", cause, "topic", topic, "error", err, "metric", "plantroom_ingest_messages_rejected_total")
	}
}

func (in *Ingest) rejectedReadings(cause string, n int, gw, device string, err error) {
	in.metrics.rejectedReadings.WithLabelValues(cause).Add(float64(n))
	key := "reading/" + cause
	if cause == CauseUnknownDevice {
		key += "/" + gw + "/" + device
	}
	if in.rejects.first(key) {
		in.log.Warn("rejected readings; further rejections like these are only counted",
			"cause", cause, "gateway", gw, "device", device, "error", err, "metric", "plantroom_ingest_readings_rejected_total")
	}
}

// decode checks a message against the topic scheme, the organisation and
// the codecs. It returns nil and no error for a message with nothing to
// store.
func (in *Ingest) decode(topic string, payload []byte, retained bool, arrived time.Time) (*item, error) {
	ref, kind, version, err := protocol.ParseAnyTopic(topic)
	if err != nil {
		in.metrics.messages.WithLabelValues("unknown").Inc()
		return nil, err
	}
	in.metrics.messages.WithLabelValues(string(kind)).Inc()
	gw, ok := in.org.gateways[ref.Gateway]
	if !ok {
		return nil, reject(CauseUnknownGateway, fmt.Errorf("unknown gateway %q", ref.Gateway))
	}
	if gw.Company.ID != ref.Company || gw.Project.ID != ref.Project {
		return nil, reject(CauseWrongProject, fmt.Errorf("gateway %q belongs to %s/%s, not %s/%s",
			ref.Gateway, gw.Company.ID, gw.Project.ID, ref.Company, ref.Project))
	}
	it := &item{kind: kind, gw: gw, arrived: arrived}
	switch kind {
	case protocol.KindTelemetry:
		b := new(protocol.Batch)
		if err := protocol.DecodeBatch(payload, b); err != nil {
			return nil, fmt.Errorf("cannot decode telemetry batch: %w", err)
		}
		if b.Gateway != ref.Gateway {
			return nil, reject(CauseGatewayMismatch, fmt.Errorf("batch from gateway %q on the topic of %q", b.Gateway, ref.Gateway))
		}
		if (version == protocol.TopicVersionV1) != (b.Epoch == 0) {
			return nil, fmt.Errorf("cannot accept telemetry batch: %w: batch version %d on a %s topic",
				protocol.ErrVersion, topicBatchVersion(b), version)
		}
		if b.Epoch == 0 && in.rejects.first("v1/"+b.Gateway) {
			in.log.Warn("gateway speaks protocol version 1: its batches are stored as epoch 0 without commit acknowledgements, so it trusts the broker's PUBACK (a broker without store_path loses what it acknowledged in a crash); upgrade its edge agent",
				"gateway", b.Gateway, "topic", topic)
		}
		// A batch whose readings are all filtered out is still committed
		// (and acknowledged): it has nothing more to deliver.
		it.causes = in.filterReadings(b, arrived)
		it.batch = b
	case protocol.KindStatus:
		s, err := protocol.DecodeStatus(payload)
		if err != nil {
			return nil, fmt.Errorf("cannot decode status: %w", err)
		}
		if s.Gateway != ref.Gateway {
			return nil, reject(CauseGatewayMismatch, fmt.Errorf("status of gateway %q on the topic of %q", s.Gateway, ref.Gateway))
		}
		if s.State == protocol.StateOffline && s.TS == 0 && in.cfg.GatewayConnected != nil && in.cfg.GatewayConnected(s.Gateway) {
			// A last will of a session the gateway has already replaced
			// (queued while the ingest was away): it is online.
			in.metrics.events.WithLabelValues(eventStaleWill).Inc()
			return nil, nil
		}
		it.status, it.store = s, !retained
	case protocol.KindEvents:
		e, err := protocol.DecodeEvent(payload)
		if err != nil {
			return nil, fmt.Errorf("cannot decode event: %w", err)
		}
		if e.Gateway != ref.Gateway {
			return nil, reject(CauseGatewayMismatch, fmt.Errorf("event of gateway %q on the topic of %q", e.Gateway, ref.Gateway))
		}
		if e.Device != "" && !in.org.devices[e.Gateway][e.Device] {
			return nil, reject(CauseUnknownDevice, fmt.Errorf("event %q for device %q, which gateway %q does not have", e.Kind, e.Device, e.Gateway))
		}
		it.event = e
	default:
		return nil, reject("topic", fmt.Errorf("%w: kind %q is not an uplink", protocol.ErrTopic, kind))
	}
	return it, nil
}

func topicBatchVersion(b *protocol.Batch) int {
	if b.Epoch == 0 {
		return protocol.BatchVersionV1
	}
	return protocol.BatchVersion
}

// filterReadings drops, in place, readings of devices the gateway does not
// have, of metrics the device's template does not declare, too far in the
// future or older than max_age, counting them; it marks readings outside
// their point's valid range bad quality, counting them too. It returns the
// cause of each bad reading kept (see item.causes).
func (in *Ingest) filterReadings(b *protocol.Batch, now time.Time) []string {
	devs := in.org.devices[b.Gateway]
	limit := now.Add(in.cfg.MaxFutureSkew).UnixMilli()
	oldest := now.Add(-in.cfg.MaxAge).UnixMilli()
	kept := b.Readings[:0]
	var causes []string
	bad := func(cause string) {
		if causes == nil {
			causes = make([]string, len(kept), len(b.Readings))
		}
		causes = append(causes, cause)
	}
	var future, old int
	var futureErr, oldErr error
	for i := range b.Readings {
		r := b.Readings[i]
		if !devs[r.Device] {
			in.rejectedReadings(CauseUnknownDevice, 1, b.Gateway, r.Device,
				fmt.Errorf("gateway %q has no device %q", b.Gateway, r.Device))
			continue
		}
		if r.TS > limit {
			if future == 0 {
				futureErr = fmt.Errorf("%s/%s at %s is more than %s ahead of the cloud's clock",
					r.Device, r.Metric, time.UnixMilli(r.TS).UTC().Format(time.RFC3339), in.cfg.MaxFutureSkew)
			}
			future++
			continue
		}
		if r.TS < oldest {
			if old == 0 {
				oldErr = fmt.Errorf("%s/%s at %s is older than max_age %s",
					r.Device, r.Metric, time.UnixMilli(r.TS).UTC().Format(time.RFC3339), in.cfg.MaxAge)
			}
			old++
			continue
		}
		cause := ""
		if in.org.templates != nil {
			t := in.org.templates[r.Device]
			var vr config.ValidRange
			ok := t != nil
			if ok {
				vr, ok = t.Metric(r.Metric)
			}
			if !ok {
				in.rejectedReadings(CauseUnknownMetric, 1, b.Gateway, r.Device,
					fmt.Errorf("device %q has no metric %q in its template", r.Device, r.Metric))
				continue
			}
			if !vr.Contains(r.Value) {
				cause = CauseOutOfRange
				if r.Quality != protocol.QualityBad {
					r.Quality = protocol.QualityBad
					in.outOfRange(b.Gateway, r, vr)
				} else {
					in.metrics.badReadings.WithLabelValues(CauseOutOfRange).Inc()
				}
			}
		}
		if r.Quality == protocol.QualityBad && cause == "" {
			cause = CauseGatewayBad
			in.metrics.badReadings.WithLabelValues(CauseGatewayBad).Inc()
		}
		if cause != "" {
			bad(cause)
		} else if causes != nil {
			causes = append(causes, "")
		}
		kept = append(kept, r)
	}
	if future > 0 {
		in.rejectedReadings(CauseFuture, future, b.Gateway, "", futureErr)
	}
	if old > 0 {
		in.rejectedReadings(CauseTooOld, old, b.Gateway, "", oldErr)
	}
	b.Readings = kept
	return causes
}

// outOfRange counts a reading marked bad quality and logs the first of
// each device and metric.
func (in *Ingest) outOfRange(gw string, r protocol.Reading, vr config.ValidRange) {
	in.metrics.badReadings.WithLabelValues(CauseOutOfRange).Inc()
	if in.rejects.first("bad/" + r.Device + "/" + r.Metric) {
		in.log.Warn("reading outside its valid range: stored with bad quality, left out of energy, latest values and alarms; further ones of this metric are only counted",
			"cause", CauseOutOfRange, "gateway", gw, "device", r.Device, "metric", r.Metric, "value", r.Value,
			"valid", vr.String(), "metric_name", "plantroom_ingest_readings_bad_total")
	}
}
