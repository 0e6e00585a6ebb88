// Package modbustest serves Modbus TCP devices whose holding and input
// registers change on every read, for the edge agent's disk-bound test and
// load benchmark (github.com/simonvetter/modbus on loopback).
package modbustest

import (
	"fmt"
	"io"
	"log"
	"net"
	"sync/atomic"

	"github.com/simonvetter/modbus"
)

// Server is one Modbus TCP device. Register i of a read number n holds
// (i + n) mod 65536, so every read differs from the one before; coils and
// discrete inputs alternate.
type Server struct {
	srv   *modbus.ModbusServer
	addr  string
	reads atomic.Uint64
}

// Start serves a device on addr ("127.0.0.1:0" for a free port). The
// listener is bound when Start returns.
func Start(addr string) (*Server, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var s *Server
		if s, err = start(addr); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func start(addr string) (*Server, error) {
	s := &Server{addr: addr}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot serve Modbus on %q: %w", addr, err)
	}
	if port == "0" {
		// The server does not tell its bound port: take a free one first.
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		s.addr = l.Addr().String()
		l.Close()
	}
	srv, err := modbus.NewServer(&modbus.ServerConfiguration{
		URL: "tcp://" + s.addr, MaxClients: 4, Logger: log.New(io.Discard, "", 0),
	}, s)
	if err != nil {
		return nil, fmt.Errorf("cannot create Modbus server on %q: %w", s.addr, err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("cannot start Modbus server on %q: %w", s.addr, err)
	}
	s.srv = srv
	return s, nil
}

// Addr is the bound host:port.
func (s *Server) Addr() string { return s.addr }

// Reads is the number of read requests served.
func (s *Server) Reads() uint64 { return s.reads.Load() }

// Close stops the server and drops its connections.
func (s *Server) Close() { s.srv.Stop() }

func (s *Server) registers(addr, qty uint16) []uint16 {
	n := s.reads.Add(1)
	out := make([]uint16, qty)
	for i := range out {
		out[i] = uint16(uint64(addr) + uint64(i) + n)
	}
	return out
}

func (s *Server) bits(addr, qty uint16) []bool {
	n := s.reads.Add(1)
	out := make([]bool, qty)
	for i := range out {
		out[i] = (uint64(addr)+uint64(i)+n)%2 == 0
	}
	return out
}

// HandleCoils serves coil reads and refuses writes.
func (s *Server) HandleCoils(r *modbus.CoilsRequest) ([]bool, error) {
	if r.IsWrite {
		return nil, modbus.ErrIllegalFunction
	}
	return s.bits(r.Addr, r.Quantity), nil
}

// HandleDiscreteInputs serves discrete input reads.
func (s *Server) HandleDiscreteInputs(r *modbus.DiscreteInputsRequest) ([]bool, error) {
	return s.bits(r.Addr, r.Quantity), nil
}

// HandleHoldingRegisters serves holding register reads and refuses writes.
func (s *Server) HandleHoldingRegisters(r *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if r.IsWrite {
		return nil, modbus.ErrIllegalFunction
	}
	return s.registers(r.Addr, r.Quantity), nil
}

// HandleInputRegisters serves input register reads.
func (s *Server) HandleInputRegisters(r *modbus.InputRegistersRequest) ([]uint16, error) {
	return s.registers(r.Addr, r.Quantity), nil
}
