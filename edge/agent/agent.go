// Package agent wires the edge agent together: Modbus poller and MQTT
// device input → report by exception → durable queue → uplink to the cloud
// broker, with Prometheus metrics and /healthz on a local HTTP port, and a
// device-list reload for SIGHUP.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/edge/control"
	"github.com/plantroom/plantroom/edge/modbus"
	"github.com/plantroom/plantroom/edge/mqttin"
	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/edge/report"
	"github.com/plantroom/plantroom/edge/uplink"
	"github.com/plantroom/plantroom/internal/buildinfo"
	"github.com/plantroom/plantroom/protocol"
)

// Version is the agent software version reported in the gateway status,
// /healthz and /metrics: the release stamp (internal/buildinfo).
var Version = buildinfo.Version

// Agent is one gateway's edge agent. New → Start → Stop.
type Agent struct {
	cfg *Config
	log *slog.Logger
	reg *prometheus.Registry

	queue  *queue.Queue
	uplink *uplink.Uplink
	poller *modbus.Poller
	input  *mqttin.Input // nil without an mqtt section
	filter *report.Filter
	guard  *control.Guard // admits commands from down/cmd
	m      *metrics

	reloadMu sync.Mutex // serialises Reload
	devices  atomic.Pointer[deviceSet]

	httpSrv  *http.Server
	httpAddr string
	httpDone chan struct{}

	started  atomic.Bool
	stopOnce sync.Once
}

// New builds the agent from a configuration that Load (or config.Decode)
// validated, templates and devices included, and sets up every part without
// opening anything.
func New(cfg *Config, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	set := cfg.devices
	if set == nil {
		return nil, errors.New("cannot create agent: the configuration was not validated (use Load)")
	}
	var err error
	a := &Agent{cfg: cfg, log: log, reg: prometheus.NewRegistry(), filter: report.NewFilter(cfg.Report.Heartbeat.Duration)}
	a.devices.Store(set)

	a.queue, err = queue.New(queue.Config{
		Path: cfg.Queue.Path, Gateway: cfg.Gateway.ID, MaxBytes: int64(cfg.Queue.MaxBytes),
		MinFreeBytes: int64(cfg.Queue.MinFree), CommitInterval: cfg.Queue.CommitInterval.Duration,
	}, log.With("part", "queue"))
	if err != nil {
		return nil, err
	}
	u := cfg.Uplink
	a.uplink, err = uplink.New(uplink.Config{
		Gateway: cfg.Gateway.Ref(), Broker: u.Broker, TLS: uplink.TLSFiles{CA: u.TLS.CA, Cert: u.TLS.Cert, Key: u.TLS.Key},
		ClientID: u.ClientID, Password: cfg.Gateway.Password,
		KeepAlive: u.KeepAlive.Duration, ConnectTimeout: u.ConnectTimeout.Duration, PublishTimeout: u.PublishTimeout.Duration,
		InFlight: u.InFlight, BatchMaxReadings: u.BatchMaxReadings, BatchMaxDelay: u.BatchMaxDelay.Duration,
		BacklogRate: u.BacklogRate, ReconnectMin: u.ReconnectMin.Duration, ReconnectMax: u.ReconnectMax.Duration,
		CommitTimeout: u.CommitTimeout.Duration, CommitTimeoutMax: u.CommitTimeoutMax.Duration,
		CommitDegradedAfter: u.CommitDegradedAfter.Duration,
		AgentVersion:        Version,
	}, a.queue, log.With("part", "uplink"), a.reg)
	if err != nil {
		return nil, err
	}
	a.poller, err = modbus.NewPoller(set.modbus, modbus.Options{
		MaxGap: *cfg.Modbus.GapFill, Sink: a.sink, OnState: a.modbusState,
		OfflineAfter: cfg.Modbus.OfflineAfter, MaxBackoff: cfg.Modbus.MaxBackoff.Duration,
		Log: log.With("part", "modbus"), Registerer: a.reg, Now: cfg.Now,
	})
	if err != nil {
		return nil, err
	}
	if a.guard, err = control.NewGuard(a.commandTemplate, cfg.Queue.Path+".commands"); err != nil {
		return nil, err
	}
	if err := a.uplink.HandleDownlink(protocol.DownCmd, a.onCommand); err != nil {
		return nil, err
	}
	if cfg.MQTT != nil {
		a.input, err = mqttin.New(*cfg.MQTT, set.mqtt, mqttin.Options{
			Sink: a.sink, OnState: a.mqttState, Log: log.With("part", "mqtt"), Registerer: a.reg, Now: cfg.Now,
			RPCSource: mqttin.RPCSource(cfg.Gateway.ID), // its own answers on a shared site broker
		})
		if err != nil {
			return nil, err
		}
	}
	if a.m, err = newMetrics(a.reg, a); err != nil {
		return nil, err
	}
	return a, nil
}

// Start opens the queue, starts the HTTP endpoint, the uplink, the MQTT
// input and the pollers, and records a gateway_start event. On an error
// everything started is stopped again.
func (a *Agent) Start(ctx context.Context) (err error) {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("cannot start agent: already started")
	}
	defer func() {
		if err != nil {
			a.Stop()
		}
	}()
	if err := a.queue.Start(ctx); err != nil {
		return err
	}
	if note := QueueRoomNote(a.cfg); note != "" {
		a.log.Warn("the disk cannot hold queue.max_bytes", "detail", note)
	}
	st := a.queue.Stats()
	if err := a.queue.AddEvent(protocol.Event{
		Kind:    protocol.EventGatewayStart,
		Message: fmt.Sprintf("edge agent %s started; %d readings waiting in the queue", Version, st.Readings),
		Attrs:   map[string]float64{"queued_readings": float64(st.Readings), "devices": float64(len(a.cfg.Devices))},
	}); err != nil {
		return err
	}
	if err := a.startHTTP(); err != nil {
		return err
	}
	if err := a.uplink.Start(ctx); err != nil {
		return err
	}
	if a.input != nil {
		if err := a.input.Start(ctx); err != nil {
			return fmt.Errorf("cannot start MQTT input: %w", err)
		}
	}
	if err := a.poller.Start(ctx); err != nil {
		return fmt.Errorf("cannot start Modbus poller: %w", err)
	}
	set := a.devices.Load()
	a.log.Info("edge agent started", "gateway", a.cfg.Gateway.ID, "version", Version,
		"modbus_devices", len(set.modbus), "mqtt_devices", len(set.mqtt), "queued_readings", st.Readings,
		"http", a.httpAddr, "broker", a.cfg.Uplink.Broker)
	return nil
}

// Stop stops taking readings, commits what is pending, announces the
// gateway offline ("shutdown") and closes the queue. Idempotent.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() {
		a.poller.Stop()
		if a.input != nil {
			a.input.Stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.queue.Flush(ctx); err != nil && !errors.Is(err, queue.ErrClosed) {
			a.log.Warn("cannot flush queue at shutdown", "err", err)
		}
		a.uplink.Stop()
		a.queue.Stop()
		a.stopHTTP()
		a.log.Info("edge agent stopped", "gateway", a.cfg.Gateway.ID)
	})
}

// HTTPAddr is the bound address of the metrics and health endpoint.
func (a *Agent) HTTPAddr() string { return a.httpAddr }

// MQTTAddr is the embedded plant-room broker's address, "" without one.
func (a *Agent) MQTTAddr() string {
	if a.input == nil {
		return ""
	}
	return a.input.Addr()
}

// Reload applies a new configuration's device list (and templates): new
// devices start, removed ones stop, changed ones restart; the queue, the
// uplink and every other setting stay as they are (a restart applies them).
// On any problem nothing changes and the error lists every problem.
func (a *Agent) Reload(next *Config) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if ignored := a.cfg.restartOnly(next); len(ignored) > 0 {
		a.log.Warn("reload applies devices and templates only; restart the agent for the rest", "changed", ignored)
	}
	set := next.devices
	if set == nil {
		return errors.New("cannot reload: the configuration was not validated (use Load)")
	}
	if len(set.mqtt) > 0 && a.input == nil {
		return errors.New("cannot reload: MQTT devices need the mqtt section, which takes a restart to add")
	}
	if err := a.poller.Update(set.modbus); err != nil {
		return fmt.Errorf("cannot reload Modbus devices: %w", err)
	}
	if a.input != nil {
		if err := a.input.Update(set.mqtt); err != nil {
			a.log.Warn("MQTT device update incomplete; retried at the next reconnect", "err", err)
		}
	}
	old := a.devices.Swap(set)
	changed := old.changed(set)
	for _, id := range changed {
		a.filter.ResetDevice(id)
	}
	a.filter.Retain(func(id string) bool { _, ok := set.byID[id]; return ok })
	a.log.Info("devices reloaded", "modbus_devices", len(set.modbus), "mqtt_devices", len(set.mqtt), "changed", len(changed))
	return nil
}

// restartOnly names the sections of next that differ from c and that only
// a restart applies.
func (c *Config) restartOnly(next *Config) []string {
	var out []string
	if c.Gateway != next.Gateway {
		out = append(out, "gateway")
	}
	if c.Uplink != next.Uplink {
		out = append(out, "uplink")
	}
	if c.Queue != next.Queue {
		out = append(out, "queue")
	}
	if c.HTTP != next.HTTP {
		out = append(out, "http")
	}
	if c.Report != next.Report {
		out = append(out, "report")
	}
	if *c.Modbus.GapFill != *next.Modbus.GapFill || c.Modbus.OfflineAfter != next.Modbus.OfflineAfter || c.Modbus.MaxBackoff != next.Modbus.MaxBackoff {
		out = append(out, "modbus")
	}
	if (c.MQTT == nil) != (next.MQTT == nil) {
		out = append(out, "mqtt")
	}
	return out
}

// sink takes one device's readings from the poller or the MQTT input:
// report by exception, then the queue. It never blocks on the disk.
func (a *Agent) sink(rs []protocol.Reading) {
	if len(rs) == 0 {
		return
	}
	n := len(rs)
	kept := a.filter.Apply(rs, a.devices.Load().specs[rs[0].Device])
	a.m.suppressed.Add(float64(n - len(kept)))
	if len(kept) == 0 {
		return
	}
	if _, err := a.queue.Add(kept); err != nil {
		cause := "invalid"
		if errors.Is(err, queue.ErrOverloaded) {
			cause = "overloaded"
		} else if errors.Is(err, queue.ErrClosed) {
			cause = "closed"
		}
		a.m.rejected.WithLabelValues(cause).Add(float64(len(kept)))
		a.m.logRejected(a.log, rs[0].Device, cause, err)
		return
	}
	a.m.taken.Add(float64(len(kept)))
}

func (a *Agent) modbusState(id string, online bool, cause error) {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	a.deviceState(id, online, msg)
}

func (a *Agent) mqttState(id string, online bool) {
	msg := "the device announced it is offline (last will)"
	if online {
		msg = "the device announced it is online"
	}
	a.deviceState(id, online, msg)
}

// deviceState records a device_offline / device_online event. A device
// back online sends every value again.
func (a *Agent) deviceState(id string, online bool, msg string) {
	kind := protocol.EventDeviceOffline
	if online {
		kind = protocol.EventDeviceOnline
		a.filter.ResetDevice(id)
	}
	if err := a.queue.AddEvent(protocol.Event{Kind: kind, Device: id, Message: msg}); err != nil {
		a.log.Warn("cannot record device event", "device", id, "kind", kind, "err", err)
		return
	}
	a.log.Info("device state", "device", id, "online", online, "message", msg)
}

func (a *Agent) startHTTP() error {
	l, err := net.Listen("tcp", a.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen for metrics on %q: %w", a.cfg.HTTP.Listen, err)
	}
	a.httpAddr = l.Addr().String()
	a.httpSrv = &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
	a.httpDone = make(chan struct{})
	go func() {
		defer close(a.httpDone)
		if err := a.httpSrv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics endpoint failed", "addr", a.httpAddr, "err", err)
		}
	}()
	return nil
}

func (a *Agent) stopHTTP() {
	if a.httpSrv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.httpSrv.Shutdown(ctx)
	<-a.httpDone
}
