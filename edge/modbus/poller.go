package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/plantroom/plantroom/protocol"
)

// Defaults for a zero Options field.
const (
	DefaultOfflineAfter = 3
	DefaultMaxBackoff   = 2 * time.Minute
)

// Options configure a Poller.
type Options struct {
	// MaxGap is the gap fill of the read plans: unused registers read to
	// merge two requests into one (see Plan). 0 merges only adjacent
	// points; the agent's configuration defaults to DefaultMaxGap.
	MaxGap int
	// Sink receives the readings of one device poll (all with the poll's
	// timestamp, quality good), from the device's poll goroutine. It must be
	// fast and must not block: the agent's sink applies report by exception
	// and appends to the durable queue. It may keep the slice.
	Sink func([]protocol.Reading)
	// OnState is told when a device goes offline (after OfflineAfter failed
	// polls in a row, with the last error) and when it answers again
	// (cause nil). Called from the device's poll goroutine; optional.
	// Sink and OnState may call Stats, but not Update or Stop.
	OnState func(deviceID string, online bool, cause error)
	// OfflineAfter failed polls in a row make a device offline; 0: 3.
	OfflineAfter int
	// MaxBackoff caps the poll interval of a failing device, which doubles
	// with every failed poll from the one that made it offline; 0: 2m.
	MaxBackoff time.Duration
	Log        *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
	Now        func() time.Time      // reading timestamps; nil: time.Now
}

// Poller polls Modbus devices, each in its own goroutine at its own
// interval. Devices on one bus (or one single-connection address) take
// turns request by request, so a slow device delays the others on its bus
// by at most its own timeout per request.
type Poller struct {
	opts Options
	log  *slog.Logger
	m    *metrics

	// opMu serialises Start, Stop and Update and guards the fields below;
	// mu guards devices for Stats and is never held while a device poller
	// is waited for, so Sink and OnState may call Stats.
	opMu    sync.Mutex
	mu      sync.Mutex
	devices map[string]*devicePoller // written under opMu and mu
	links   map[string]*link
	ctx     context.Context
	cancel  context.CancelFunc
	started bool
	stopped bool
}

// NewPoller checks the devices (every problem, with its path
// "devices[i]...") and the options, and builds their read plans. Nothing is
// connected before Start.
func NewPoller(devs []Device, opts Options) (*Poller, error) {
	if opts.Sink == nil {
		return nil, errors.New("cannot create Modbus poller: no sink for the readings")
	}
	if opts.MaxGap < 0 || opts.MaxGap > MaxRegisters {
		return nil, fmt.Errorf("cannot create Modbus poller: gap fill %d is not between 0 and %d", opts.MaxGap, MaxRegisters)
	}
	if opts.OfflineAfter < 0 || opts.MaxBackoff < 0 {
		return nil, fmt.Errorf("cannot create Modbus poller: offline after %d polls, max backoff %s: must not be negative", opts.OfflineAfter, opts.MaxBackoff)
	}
	if opts.OfflineAfter == 0 {
		opts.OfflineAfter = DefaultOfflineAfter
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Poller{opts: opts, log: opts.Log, m: newMetrics(opts.Registerer),
		devices: map[string]*devicePoller{}, links: map[string]*link{}}
	if err := p.Update(devs); err != nil {
		return nil, err
	}
	return p, nil
}

// Start starts polling every device; the first polls go out at once.
// Polling ends with Stop or when ctx is done.
func (p *Poller) Start(ctx context.Context) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.started || p.stopped {
		return errors.New("cannot start Modbus poller: already started or stopped")
	}
	p.started = true
	p.ctx, p.cancel = context.WithCancel(ctx)
	for _, d := range p.devices {
		d.start(p.ctx)
	}
	p.log.Info("modbus poller started", "devices", len(p.devices), "links", len(p.links))
	return nil
}

// Stop ends polling, waits for every poll goroutine (a request in flight
// finishes first, at most its device's timeout) and closes the connections.
// It may be called more than once.
func (p *Poller) Stop() {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	if p.cancel != nil {
		p.cancel()
	}
	for _, d := range p.devices {
		d.stop()
	}
	for _, l := range p.links {
		l.close()
	}
}

// Update replaces the set of devices (configuration reload): removed
// devices stop, new ones start, changed ones (any setting, the template's
// content or the connection they share) restart with fresh statistics;
// unchanged devices poll on undisturbed. When devs has a problem nothing
// changes and the error lists every problem.
func (p *Poller) Update(devs []Device) error {
	if err := validateDevices(devs); err != nil {
		return fmt.Errorf("cannot configure Modbus devices: %w", err)
	}
	keys := linkKeys(devs)
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.stopped {
		return errors.New("cannot configure Modbus devices: poller stopped")
	}
	byID := make(map[string]Device, len(devs))
	for _, d := range devs {
		byID[d.ID] = d
	}
	// Check the new plans first, so a plan error changes nothing.
	type added struct {
		cfg Device
		key string
	}
	var adds []added
	var stops []*devicePoller
	for id, d := range p.devices {
		nd, keep := byID[id]
		if !keep || !sameDevice(d.cfg, nd) || d.link.key != keys[id] {
			stops = append(stops, d)
		}
	}
	for _, d := range devs {
		if old := p.devices[d.ID]; old == nil || !sameDevice(old.cfg, d) || old.link.key != keys[d.ID] {
			if _, err := Plan(d.withDefaults().Template, p.opts.MaxGap); err != nil {
				return fmt.Errorf("cannot configure Modbus device %q: %w", d.ID, err)
			}
			adds = append(adds, added{d, keys[d.ID]})
		}
	}
	// Stop before starting, so a single-connection device never sees its
	// old and new connection at once.
	for _, d := range stops {
		d.stop()
		p.mu.Lock()
		delete(p.devices, d.cfg.ID)
		p.mu.Unlock()
		p.releaseLink(d.link)
		p.m.forget(d.cfg.ID)
	}
	for _, a := range adds {
		addr, _ := ParseAddress(a.cfg.Address)
		l := p.links[a.key]
		if l == nil {
			l = newLink(a.key, addr)
			p.links[a.key] = l
		}
		l.refs++
		d, err := newDevicePoller(p, a.cfg, l)
		if err != nil { // planned above: cannot happen
			panic(fmt.Sprintf("BUG: plan of device %q failed after check: %v", a.cfg.ID, err))
		}
		p.mu.Lock()
		p.devices[a.cfg.ID] = d
		p.mu.Unlock()
		if p.started {
			d.start(p.ctx)
		}
	}
	if p.started && (len(stops) > 0 || len(adds) > 0) {
		p.log.Info("modbus devices reconfigured", "devices", len(p.devices), "stopped", len(stops), "started", len(adds))
	}
	return nil
}

// releaseLink drops a device's hold on its link and closes the link when
// no device uses it any more. p.opMu is held.
func (p *Poller) releaseLink(l *link) {
	l.refs--
	if l.refs == 0 {
		l.close()
		delete(p.links, l.key)
	}
}

// Stats returns every device's statistics by device id.
func (p *Poller) Stats() map[string]DeviceStats {
	p.mu.Lock()
	devs := make([]*devicePoller, 0, len(p.devices))
	for _, d := range p.devices {
		devs = append(devs, d)
	}
	p.mu.Unlock()
	out := make(map[string]DeviceStats, len(devs))
	for _, d := range devs {
		out[d.cfg.ID] = d.snapshot()
	}
	return out
}

// metrics are the poller's Prometheus series, labelled by device. A removed
// device's series are deleted.
type metrics struct {
	pointsRead   *prometheus.CounterVec
	readErrors   *prometheus.CounterVec
	online       *prometheus.GaugeVec
	requests     *prometheus.GaugeVec
	pollDuration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		pointsRead: f.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_modbus_points_read_total",
			Help: "Readings decoded from Modbus devices.",
		}, []string{"device"}),
		readErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_edge_modbus_read_errors_total",
			Help: "Failed Modbus requests and undecodable points, by cause (timeout, connection, frame, exception_<code>, invalid_value, decode), and points outside their valid range (out_of_range: kept with bad quality).",
		}, []string{"device", "cause"}),
		online: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plantroom_edge_modbus_device_online",
			Help: "1 while a Modbus device answers, 0 once it is reported offline.",
		}, []string{"device"}),
		requests: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plantroom_edge_modbus_requests_per_poll",
			Help: "Read requests one poll of the device sends.",
		}, []string{"device"}),
		pollDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "plantroom_edge_modbus_poll_duration_seconds",
			Help:    "Time one poll of a Modbus device takes, waiting for a shared bus included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"device"}),
	}
}

// forget deletes a device's series.
func (m *metrics) forget(device string) {
	m.pointsRead.DeleteLabelValues(device)
	m.readErrors.DeletePartialMatch(prometheus.Labels{"device": device})
	m.online.DeleteLabelValues(device)
	m.requests.DeleteLabelValues(device)
	m.pollDuration.DeleteLabelValues(device)
}
