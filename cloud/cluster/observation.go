package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Observation kinds.
const (
	KindBatch  = "batch"
	KindStatus = "status"
	KindEvent  = "event"
)

// Observation is what one ingest replica committed, for the owner's alarm
// engine: a batch's accepted readings, a status or an event of a gateway.
// On the wire it is JSON with the message in the protocol's own encoding.
type Observation struct {
	Gateway string          `json:"gateway"`
	Kind    string          `json:"kind"`
	Arrived int64           `json:"arrived"` // ms, when the ingest received it
	Data    []byte          `json:"data"`
	Batch   *protocol.Batch `json:"-"`
	Status  protocol.Status `json:"-"`
	Event   protocol.Event  `json:"-"`
}

// Encode renders the observation for ObservedTopic.
func (o Observation) Encode() ([]byte, error) {
	var err error
	switch o.Kind {
	case KindBatch:
		o.Data, err = protocol.AppendBatch(nil, o.Batch)
	case KindStatus:
		o.Data = protocol.EncodeStatus(o.Status)
	case KindEvent:
		o.Data = protocol.EncodeEvent(o.Event)
	default:
		err = fmt.Errorf("unknown kind %q", o.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot encode an observation of gateway %q: %w", o.Gateway, err)
	}
	return json.Marshal(o)
}

// DecodeObservation reads what Encode wrote.
func DecodeObservation(p []byte) (Observation, error) {
	var o Observation
	if err := json.Unmarshal(p, &o); err != nil {
		return o, fmt.Errorf("cannot decode an observation: %w", err)
	}
	var err error
	switch o.Kind {
	case KindBatch:
		o.Batch = new(protocol.Batch)
		err = protocol.DecodeBatch(o.Data, o.Batch)
	case KindStatus:
		o.Status, err = protocol.DecodeStatus(o.Data)
	case KindEvent:
		o.Event, err = protocol.DecodeEvent(o.Data)
	default:
		err = fmt.Errorf("unknown kind %q", o.Kind)
	}
	if err != nil {
		return o, fmt.Errorf("cannot decode an observation of gateway %q: %w", o.Gateway, err)
	}
	return o, nil
}

// Observer is what the alarm engine implements (ingest.Observer).
type Observer interface {
	ObserveBatch(ctx context.Context, gw config.GatewayInfo, b *protocol.Batch, arrived time.Time)
	ObserveStatus(ctx context.Context, gw config.GatewayInfo, s protocol.Status, arrived time.Time)
	ObserveEvent(ctx context.Context, gw config.GatewayInfo, e protocol.Event, arrived time.Time)
}

// Publisher is the ingest observer of a lease mode process: it hands what
// the ingest committed to the owner through the broker.
type Publisher struct{ l *Lease }

// Publisher returns the lease's observation publisher.
func (l *Lease) Publisher() Publisher { return Publisher{l} }

func (p Publisher) ObserveBatch(_ context.Context, gw config.GatewayInfo, b *protocol.Batch, arrived time.Time) {
	p.l.Publish(Observation{Gateway: gw.Gateway.ID, Kind: KindBatch, Arrived: arrived.UnixMilli(), Batch: b})
}

func (p Publisher) ObserveStatus(_ context.Context, gw config.GatewayInfo, s protocol.Status, arrived time.Time) {
	p.l.Publish(Observation{Gateway: gw.Gateway.ID, Kind: KindStatus, Arrived: arrived.UnixMilli(), Status: s})
}

func (p Publisher) ObserveEvent(_ context.Context, gw config.GatewayInfo, e protocol.Event, arrived time.Time) {
	p.l.Publish(Observation{Gateway: gw.Gateway.ID, Kind: KindEvent, Arrived: arrived.UnixMilli(), Event: e})
}

// Deliver hands o to obs with the gateway looked up in org; an unknown
// gateway (the organisation changed) is reported.
func Deliver(ctx context.Context, org *config.Org, obs Observer, o Observation) error {
	gw, ok := org.FindGateway(o.Gateway)
	if !ok {
		return fmt.Errorf("cannot evaluate an observation of gateway %q: not in the organisation", o.Gateway)
	}
	at := time.UnixMilli(o.Arrived)
	switch o.Kind {
	case KindBatch:
		obs.ObserveBatch(ctx, gw, o.Batch, at)
	case KindStatus:
		obs.ObserveStatus(ctx, gw, o.Status, at)
	case KindEvent:
		obs.ObserveEvent(ctx, gw, o.Event, at)
	}
	return nil
}
