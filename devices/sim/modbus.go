package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/simonvetter/modbus"
)

// idleTimeout closes a client connection that sent nothing for this long.
const idleTimeout = 2 * time.Minute

// errNoReply tells the RTU framer to stay silent, as an RTU slave does for
// frames addressed to another unit.
var errNoReply = errors.New("no reply")

// modbusServer serves one device's register image over Modbus TCP (the
// simonvetter/modbus server) or RTU over TCP (rtuServer), and reconciles
// its listener with the device's fault: stopped while unreachable,
// restarted with one client slot in single-connection mode.
type modbusServer struct {
	b   *Building
	d   *device
	log *slog.Logger

	mu     sync.Mutex
	addr   string // bound address; fixed after the first start
	tcp    *modbus.ModbusServer
	rtu    *rtuServer
	single bool
	closed bool
	done   chan struct{} // closed by close: interrupts slow answers
}

func newModbusServer(b *Building, d *device) *modbusServer {
	return &modbusServer{b: b, d: d, log: b.log.With("device", d.cfg.ID), done: make(chan struct{})}
}

func (s *modbusServer) address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// apply brings the listener in line with fault f.
func (s *modbusServer) apply(f Fault) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	running := s.tcp != nil || s.rtu != nil
	switch {
	case f.Unreachable:
		s.shutdown()
		return nil
	case running && f.SingleConnection == s.single:
		return nil
	}
	s.shutdown()
	s.single = f.SingleConnection
	return s.listen()
}

// listen starts the server. A port-0 address is resolved to a free port on
// the first start and kept for restarts. s.mu is held.
func (s *modbusServer) listen() error {
	maxClients := uint(16)
	if s.single {
		maxClients = 1
	}
	if s.d.cfg.Transport == TransportRTUOverTCP {
		addr := s.addr
		if addr == "" {
			addr = s.d.cfg.Listen
		}
		r, err := newRTUServer(addr, int(maxClients), s)
		if err != nil {
			return fmt.Errorf("cannot serve device %q over RTU on %q: %w", s.d.cfg.ID, addr, err)
		}
		s.rtu, s.addr = r, r.addr()
		return nil
	}
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		addr := s.addr
		if addr == "" {
			if addr, err = resolvePort(s.d.cfg.Listen); err != nil {
				break
			}
		}
		var srv *modbus.ModbusServer
		srv, err = modbus.NewServer(&modbus.ServerConfiguration{
			URL: "tcp://" + addr, Timeout: idleTimeout, MaxClients: maxClients,
			Logger: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}, &handler{s: s})
		if err == nil {
			err = srv.Start()
		}
		if err == nil {
			s.tcp, s.addr = srv, addr
			return nil
		}
		if s.addr != "" || !strings.HasSuffix(s.d.cfg.Listen, ":0") {
			break // a fixed port: retrying will not help
		}
	}
	return fmt.Errorf("cannot serve device %q over Modbus TCP on %q: %w", s.d.cfg.ID, s.d.cfg.Listen, err)
}

// resolvePort turns "host:0" into "host:<free port>". The simonvetter server
// binds by itself and does not tell its port, so the port is found by binding
// and releasing it; listen retries when another process takes it meanwhile.
func resolvePort(listen string) (string, error) {
	if !strings.HasSuffix(listen, ":0") {
		return listen, nil
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// shutdown stops the listener and drops every connection. s.mu is held.
func (s *modbusServer) shutdown() {
	if s.tcp != nil {
		s.tcp.Stop()
		s.tcp = nil
	}
	if s.rtu != nil {
		s.rtu.close()
		s.rtu = nil
	}
}

// close stops the server for good.
func (s *modbusServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
		s.shutdown()
	}
}

// handler answers requests from the device's current snapshot. It
// implements modbus.RequestHandler for the TCP server; the RTU framer calls
// it too.
type handler struct {
	s    *modbusServer
	quit <-chan struct{} // closed when this server instance stops; nil for TCP
}

// prelude checks the unit id and applies slow-answer and exception faults.
func (h *handler) prelude(unit uint8, rtu bool) error {
	want := uint8(h.s.d.cfg.UnitID)
	if unit != want && (rtu || (unit != 0 && unit != 255)) {
		if rtu {
			return errNoReply
		}
		return modbus.ErrGWTargetFailedToRespond
	}
	f := h.s.d.currentFault()
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-h.s.done:
			return modbus.ErrServerDeviceBusy
		case <-h.quit:
			return errNoReply
		}
	}
	if f.Exception != 0 {
		return exceptionErrors[f.Exception]
	}
	return nil
}

func (h *handler) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	if err := h.prelude(req.UnitId, req.ClientRole == rtuRole); err != nil {
		return nil, err
	}
	if req.IsWrite {
		if h.s.d.currentFault().StuckOutputs {
			h.s.log.Info("coil write acknowledged, outputs stuck: nothing changed", "address", req.Addr, "values", req.Args)
			return nil, nil
		}
		return nil, h.s.writeCoils(req.Addr, req.Args)
	}
	return bits(h.s.d.image().coils, req.Addr, req.Quantity)
}

func (h *handler) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	if err := h.prelude(req.UnitId, req.ClientRole == rtuRole); err != nil {
		return nil, err
	}
	return bits(h.s.d.image().discrete, req.Addr, req.Quantity)
}

func (h *handler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if err := h.prelude(req.UnitId, req.ClientRole == rtuRole); err != nil {
		return nil, err
	}
	img := h.s.d.image()
	if req.IsWrite {
		if _, err := words(img.holding, req.Addr, req.Quantity); err != nil {
			return nil, err
		}
		if h.s.d.currentFault().StuckOutputs {
			h.s.log.Info("register write acknowledged, outputs stuck: nothing changed", "address", req.Addr)
			return nil, nil
		}
		return nil, h.s.writeRegisters(req.Addr, req.Args)
	}
	return words(img.holding, req.Addr, req.Quantity)
}

func (h *handler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	if err := h.prelude(req.UnitId, req.ClientRole == rtuRole); err != nil {
		return nil, err
	}
	return words(h.s.d.image().input, req.Addr, req.Quantity)
}

// rtuRole marks requests that came in over RTU framing.
const rtuRole = "\x00rtu"

// words answers a register read from a table: illegal function when the
// device has no such table, illegal data address past its end.
func words(table []uint16, addr, qty uint16) ([]uint16, error) {
	if len(table) == 0 {
		return nil, modbus.ErrIllegalFunction
	}
	if int(addr)+int(qty) > len(table) {
		return nil, modbus.ErrIllegalDataAddress
	}
	return append([]uint16(nil), table[addr:int(addr)+int(qty)]...), nil
}

func bits(table []bool, addr, qty uint16) ([]bool, error) {
	if len(table) == 0 {
		return nil, modbus.ErrIllegalFunction
	}
	if int(addr)+int(qty) > len(table) {
		return nil, modbus.ErrIllegalDataAddress
	}
	return append([]bool(nil), table[addr:int(addr)+int(qty)]...), nil
}

// writeCoils switches lighting circuits by hand; every other coil is
// read-only.
func (s *modbusServer) writeCoils(addr uint16, vals []bool) error {
	p, ok := s.d.model.(*panel)
	if !ok {
		return modbus.ErrIllegalFunction
	}
	circuits := make([]int, len(vals))
	for i := range vals {
		circuits[i] = -1
		for _, pt := range s.d.tmpl.Points {
			var n int
			if pt.Register == config.RegCoil && pt.Address == addr+uint16(i) {
				if _, err := fmt.Sscanf(pt.Metric, "circuit%d_on", &n); err == nil {
					circuits[i] = n - 1
				}
			}
		}
		if circuits[i] < 0 {
			return modbus.ErrIllegalDataAddress
		}
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	for i, c := range circuits {
		if err := p.switchCircuit(c, vals[i]); err != nil {
			return modbus.ErrIllegalDataAddress
		}
	}
	s.log.Info("lighting circuits switched by Modbus write", "address", addr, "values", vals)
	s.b.publishLocked()
	return nil
}

// registerWriter is a model with writable holding registers.
type registerWriter interface {
	write(metric string, v float64) error
}

// writeRegisters executes a write to holding registers: the written words
// must be exactly one writable point of the template (decoded as a gateway
// reads it) whose value the template allows; every other register is
// read-only (illegal data address), a value outside the point's range is an
// illegal data value.
func (s *modbusServer) writeRegisters(addr uint16, vals []uint16) error {
	w, ok := s.d.model.(registerWriter)
	if !ok {
		return modbus.ErrIllegalDataAddress
	}
	var pt *config.Point
	for i := range s.d.tmpl.Points {
		q := &s.d.tmpl.Points[i]
		if q.Writable && q.Register == config.RegHolding && q.Address == addr && config.TypeRegisters[q.Type] == len(vals) {
			pt = q
		}
	}
	if pt == nil {
		return modbus.ErrIllegalDataAddress
	}
	v := DecodePoint(pt, vals)
	if _, err := s.d.tmpl.CheckWrite(pt.Metric, v); err != nil {
		s.log.Warn("Modbus write refused", "metric", pt.Metric, "value", v, "error", err)
		return modbus.ErrIllegalDataValue
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if err := w.write(pt.Metric, v); err != nil {
		return modbus.ErrIllegalDataAddress
	}
	s.log.Info("holding register written by Modbus", "address", addr, "metric", pt.Metric, "value", v)
	s.b.publishLocked()
	return nil
}
