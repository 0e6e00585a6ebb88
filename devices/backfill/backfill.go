// Package backfill produces history for a simulated building: it runs the
// device models of package sim over a period on the virtual clock, encodes
// the readings as protocol telemetry batches and publishes them QoS 1 to a
// gateway's telemetry topic exactly as the edge agent would. It also
// computes the exact energy per device per local day and hour that those
// readings imply (Expected), for tests of the energy reports.
package backfill

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

const telemetryKind = protocol.KindTelemetry

// Metric selections.
const (
	MetricsEnergy = "energy" // each device's energy counter and power metric
	MetricsAll    = "all"    // every metric of every template
)

// DefaultSeqStart keeps backfill sequence numbers far above anything a live
// edge agent reaches, so the two never collide.
const DefaultSeqStart uint64 = 1_000_000_000_000

// Options describe one backfill run.
type Options struct {
	Building  *sim.Config // the simulated building; its clock settings are replaced
	Templates config.Templates
	Gateway   protocol.GatewayRef
	From, To  time.Time      // period [From, To)
	Interval  time.Duration  // between two readings of a device (default 60s)
	Step      time.Duration  // model step (default 10s, at most Interval)
	Location  *time.Location // time zone of days and hours in Expected
	// SeqStart: batches are numbered SeqStart+1, SeqStart+2, …
	SeqStart uint64
	// Epoch of the batches (protocol version 2): default a random one per
	// run, so a backfill never shares a seq space with the live edge agent
	// or with an earlier backfill of another period.
	Epoch   uint64
	Metrics string // MetricsEnergy (default) or MetricsAll
	// Replacements swap a device's meter (kWh counters restart at 0).
	Replacements []Replacement
	// Gaps are periods without readings (the gateway or a device offline).
	Gaps []Gap
	// AllowFuture permits a period ending after now (the cloud rejects
	// readings from the future; tests against their own broker need not).
	AllowFuture bool

	Broker   string // tcp://host:port
	Username string
	Password string
	ClientID string        // default "<gateway>-backfill"
	Window   int           // batches awaiting PUBACK at once (default 32)
	Timeout  time.Duration // connect and per-PUBACK timeout (default 30s)
}

// Replacement is a meter replaced at a moment.
type Replacement struct {
	Device string    `json:"device"`
	At     time.Time `json:"at"`
}

// Gap is a period [From, To) without readings of Device ("" = every device).
type Gap struct {
	Device string    `json:"device,omitempty"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

// validate checks the options and applies defaults; every problem is named.
func (o *Options) validate(now time.Time) error {
	var p config.Problems
	if o.Interval == 0 {
		o.Interval = time.Minute
	}
	if o.Step == 0 {
		o.Step = min(10*time.Second, o.Interval)
	}
	if o.Metrics == "" {
		o.Metrics = MetricsEnergy
	}
	if o.ClientID == "" {
		o.ClientID = o.Gateway.Gateway + "-backfill"
	}
	if o.Window == 0 {
		o.Window = 32
	}
	if o.Epoch == 0 {
		o.Epoch = protocol.NewEpoch()
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Building == nil {
		p.Addf("config", "a building configuration is required")
	}
	if err := o.Gateway.Validate(); err != nil {
		p.Add("gateway", err)
	}
	if o.From.IsZero() || o.To.IsZero() || !o.From.Before(o.To) {
		p.Addf("from", "the period needs from < to, got %s … %s", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	if o.To.After(now) && !o.AllowFuture {
		p.Addf("to", "%s is in the future; the cloud rejects future readings", o.To.Format(time.RFC3339))
	}
	if o.Interval < time.Second || o.Interval > time.Hour {
		p.Addf("interval", "must be between 1s and 1h, got %s", o.Interval)
	}
	if o.Step <= 0 || o.Step > o.Interval || o.Interval%o.Step != 0 {
		p.Addf("step", "must divide the interval %s, got %s", o.Interval, o.Step)
	}
	if o.Location == nil {
		p.Addf("tz", "a time zone is required")
	}
	if o.Metrics != MetricsEnergy && o.Metrics != MetricsAll {
		p.Addf("metrics", "want %s or %s, got %q", MetricsEnergy, MetricsAll, o.Metrics)
	}
	if o.Broker == "" {
		p.Addf("broker", "required")
	}
	if o.Window < 1 || o.Window > 1000 {
		p.Addf("window", "must be 1–1000, got %d", o.Window)
	}
	devices := map[string]bool{}
	if o.Building != nil {
		for _, d := range o.Building.Devices {
			devices[d.ID] = true
		}
	}
	for i, r := range o.Replacements {
		rp := config.Join("replace-meter", i)
		if !devices[r.Device] {
			p.Addf(rp, "unknown device %q", r.Device)
		}
		if r.At.Before(o.From) || !r.At.Before(o.To) {
			p.Addf(rp, "%s is outside the period", r.At.Format(time.RFC3339))
		}
	}
	for i, g := range o.Gaps {
		gp := config.Join("gap", i)
		if g.Device != "" && !devices[g.Device] {
			p.Addf(gp, "unknown device %q", g.Device)
		}
		if !g.From.Before(g.To) {
			p.Addf(gp, "needs from < to, got %s … %s", g.From.Format(time.RFC3339), g.To.Format(time.RFC3339))
		}
	}
	return p.Err()
}

// series is one published metric of one device.
type series struct {
	metric   string
	quantize func(float64) float64
	totals   *energyTotals // the energy counter only
}

type source struct {
	id     string
	series []series
}

// Run simulates the period, publishes every batch and waits for every
// PUBACK, then returns the expected totals. With a state file
// (Building.StateFile) the counters start from it, when it exists, and the
// counters of the last reading are written to it once every batch is
// acknowledged, so that the live simulator continues from them.
func Run(ctx context.Context, o Options, log *slog.Logger) (*Expected, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := o.validate(time.Now()); err != nil {
		return nil, fmt.Errorf("cannot backfill: %w", err)
	}
	if err := checkState(o.Building.StateFile, o.From); err != nil {
		return nil, fmt.Errorf("cannot backfill: %w", err)
	}
	cfg := *o.Building
	cfg.Control = ""
	cfg.Clock = sim.ClockConfig{Start: o.From, Manual: true, Step: config.D(o.Step)}
	b, err := sim.New(&cfg, o.Templates, log)
	if err != nil {
		return nil, fmt.Errorf("cannot backfill: %w", err)
	}
	exp, sources := o.plan(&cfg)
	pub, err := connect(ctx, &o)
	if err != nil {
		return nil, fmt.Errorf("cannot backfill: %w", err)
	}
	defer pub.close()

	started := time.Now()
	seq := o.SeqStart
	batch := make([]protocol.Reading, 0, protocol.MaxBatchReadings)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		seq++
		payload, err := protocol.AppendBatch(nil, &protocol.Batch{
			Gateway: o.Gateway.Gateway, Epoch: o.Epoch, Seq: seq, SentAt: batch[len(batch)-1].TS, Readings: batch,
		})
		if err != nil {
			return fmt.Errorf("BUG: cannot encode backfill batch %d: %w", seq, err)
		}
		if exp.SeqFirst == 0 {
			exp.SeqFirst = seq
		}
		exp.SeqLast, exp.Batches, exp.Readings = seq, exp.Batches+1, exp.Readings+len(batch)
		batch = batch[:0]
		return pub.publish(ctx, seq, payload)
	}
	repl := append([]Replacement(nil), o.Replacements...)
	now := o.From
	for t := o.From; t.Before(o.To); t = t.Add(o.Interval) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if repl, err = advance(b, &now, t, repl); err != nil {
			return nil, err
		}
		ms := t.UnixMilli()
		for _, s := range sources {
			if o.inGap(s.id, t) {
				continue
			}
			vals, err := b.Values(s.id)
			if err != nil {
				return nil, err
			}
			for _, se := range s.series {
				v := se.quantize(vals[se.metric])
				batch = append(batch, protocol.Reading{Device: s.id, Metric: se.metric, TS: ms, Value: v})
				if se.totals != nil {
					se.totals.add(t, v)
				}
				if len(batch) == protocol.MaxBatchReadings {
					if err := send(); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	if err := send(); err != nil {
		return nil, err
	}
	if err := pub.flush(ctx); err != nil {
		return nil, err
	}
	if cfg.StateFile != "" {
		// The counters as last read, so that the live simulator continues
		// from the values the cloud has last seen.
		if err := b.SaveState(); err != nil {
			return nil, fmt.Errorf("cannot backfill: %w", err)
		}
		log.Info("device counters saved", "state_file", cfg.StateFile, "virtual_time", b.Now().In(o.Location).Format(time.RFC3339))
	}
	for _, s := range sources {
		for _, se := range s.series {
			if se.totals != nil {
				d := exp.Devices[s.id]
				se.totals.fill(d, o.From, o.To)
				if se.totals.have {
					d.First = &Point{TS: se.totals.firstTS.In(o.Location), Value: se.totals.firstV}
					d.Last = &Point{TS: se.totals.prevTS.In(o.Location), Value: se.totals.prevV}
				}
			}
		}
	}
	el := time.Since(started)
	log.Info("backfill published", "gateway", o.Gateway.Gateway, "batches", exp.Batches, "readings", exp.Readings,
		"epoch", o.Epoch, "seq_first", exp.SeqFirst, "seq_last", exp.SeqLast, "elapsed", el.Round(time.Millisecond),
		"readings_per_second", int(float64(exp.Readings)/el.Seconds()))
	return exp, nil
}

// advance moves the building's clock from *now to t, replacing meters at
// their moments on the way; it returns the replacements still to come.
func advance(b *sim.Building, now *time.Time, t time.Time, repl []Replacement) ([]Replacement, error) {
	for {
		next := -1
		for i, r := range repl {
			if !r.At.After(t) && (next < 0 || r.At.Before(repl[next].At)) {
				next = i
			}
		}
		if next < 0 {
			break
		}
		r := repl[next]
		repl = append(repl[:next:next], repl[next+1:]...)
		if err := b.Advance(r.At.Sub(*now)); err != nil {
			return nil, err
		}
		*now = r.At
		if err := b.MeterReplaced(r.Device); err != nil {
			return nil, fmt.Errorf("cannot replace meter: %w", err)
		}
	}
	if err := b.Advance(t.Sub(*now)); err != nil {
		return nil, err
	}
	*now = t
	return repl, nil
}

func (o *Options) inGap(device string, t time.Time) bool {
	for _, g := range o.Gaps {
		if (g.Device == "" || g.Device == device) && !t.Before(g.From) && t.Before(g.To) {
			return true
		}
	}
	return false
}

// plan picks each device's published metrics and starts the expected totals.
func (o *Options) plan(cfg *sim.Config) (*Expected, []source) {
	exp := &Expected{
		Gateway: o.Gateway.Gateway, Company: o.Gateway.Company, Project: o.Gateway.Project,
		TimeZone: o.Location.String(), From: o.From.In(o.Location), To: o.To.In(o.Location),
		Interval: o.Interval.String(), Replacements: o.Replacements, Gaps: o.Gaps,
		Devices: map[string]*DeviceExpected{},
	}
	var sources []source
	for _, d := range cfg.Devices {
		t := o.Templates[d.Template]
		s := source{id: d.ID}
		var metrics []string
		if o.Metrics == MetricsAll {
			for _, pt := range t.Points {
				metrics = append(metrics, pt.Metric)
			}
			if t.MQTT != nil {
				for _, f := range t.MQTT.Fields {
					metrics = append(metrics, f.Metric)
				}
			}
		} else if t.Energy != nil {
			for _, m := range []string{t.Energy.Counter, t.Energy.Power} {
				if m != "" {
					metrics = append(metrics, m)
				}
			}
		}
		for _, m := range metrics {
			se := series{metric: m, quantize: sim.Quantizer(t, m)}
			if t.Energy != nil && m == t.Energy.Counter {
				se.totals = newEnergyTotals(o.Location, rolloverOf(t, m))
				exp.Devices[d.ID] = &DeviceExpected{Kind: t.Kind, Template: t.ID, Metric: m, Rollover: se.totals.rollover}
			}
			s.series = append(s.series, se)
		}
		if len(s.series) > 0 {
			sources = append(sources, s)
		}
	}
	return exp, sources
}

func rolloverOf(t *config.Template, metric string) float64 {
	if pt := t.Point(metric); pt != nil {
		return pt.Rollover
	}
	if t.MQTT != nil {
		for _, f := range t.MQTT.Fields {
			if f.Metric == metric {
				return f.Rollover
			}
		}
	}
	return 0
}
