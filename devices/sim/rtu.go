package sim

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/simonvetter/modbus"
)

// rtuServer serves Modbus RTU frames (unit id, PDU, CRC-16) over TCP, as a
// serial device behind a transparent serial-to-Ethernet converter does. The
// simonvetter/modbus server speaks only Modbus TCP, so the framing lives
// here; requests go to the same handler.
type rtuServer struct {
	ln         net.Listener
	maxClients int
	ms         *modbusServer
	h          *handler

	quit  chan struct{} // closed by close: interrupts slow answers
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newRTUServer(addr string, maxClients int, ms *modbusServer) (*rtuServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &rtuServer{ln: ln, maxClients: maxClients, ms: ms, quit: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	r.h = &handler{s: ms, quit: r.quit}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *rtuServer) addr() string { return r.ln.Addr().String() }

func (r *rtuServer) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if len(r.conns) >= r.maxClients {
			r.mu.Unlock()
			c.Close()
			continue
		}
		r.conns[c] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(1)
		go r.serve(c)
	}
}

// close stops listening, drops every connection and waits for them.
func (r *rtuServer) close() {
	close(r.quit)
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *rtuServer) serve(c net.Conn) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		c.Close()
	}()
	for {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		frame, err := readRTUFrame(c)
		if err != nil {
			return
		}
		if frame == nil { // bad CRC or unframeable: a slave stays silent
			continue
		}
		resp := r.answer(frame)
		if resp == nil {
			continue
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// readRTUFrame reads one request frame. Its length follows from the
// function code; it returns nil for a frame with a bad CRC or an unknown
// function (after draining what arrived), an error when the connection fails.
func readRTUFrame(c net.Conn) ([]byte, error) {
	buf := make([]byte, 2, 260)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	var rest int
	switch buf[1] {
	case 1, 2, 3, 4, 5, 6:
		rest = 4 + 2
	case 15, 16:
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return nil, err
		}
		buf = append(buf, hdr...)
		rest = int(hdr[4]) + 2
	default:
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		io.Copy(io.Discard, c)
		return nil, nil
	}
	tail := make([]byte, rest)
	if _, err := io.ReadFull(c, tail); err != nil {
		return nil, err
	}
	buf = append(buf, tail...)
	n := len(buf)
	if binary.LittleEndian.Uint16(buf[n-2:]) != crc16(buf[:n-2]) {
		return nil, nil
	}
	return buf[:n-2], nil
}

// answer runs one request (without CRC) and returns the response frame,
// or nil when the device stays silent.
func (r *rtuServer) answer(f []byte) []byte {
	unit, fc, p := f[0], f[1], f[2:]
	addr := binary.BigEndian.Uint16(p[0:])
	qty := binary.BigEndian.Uint16(p[2:])
	out := []byte{unit, fc}
	var err error
	switch fc {
	case 1, 2:
		if qty == 0 || qty > 2000 {
			err = modbus.ErrIllegalDataValue
			break
		}
		var bs []bool
		if fc == 1 {
			bs, err = r.h.HandleCoils(&modbus.CoilsRequest{ClientRole: rtuRole, UnitId: unit, Addr: addr, Quantity: qty})
		} else {
			bs, err = r.h.HandleDiscreteInputs(&modbus.DiscreteInputsRequest{ClientRole: rtuRole, UnitId: unit, Addr: addr, Quantity: qty})
		}
		if err == nil {
			packed := make([]byte, (len(bs)+7)/8)
			for i, b := range bs {
				if b {
					packed[i/8] |= 1 << (i % 8)
				}
			}
			out = append(append(out, byte(len(packed))), packed...)
		}
	case 3, 4:
		if qty == 0 || qty > 125 {
			err = modbus.ErrIllegalDataValue
			break
		}
		var regs []uint16
		if fc == 3 {
			regs, err = r.h.HandleHoldingRegisters(&modbus.HoldingRegistersRequest{ClientRole: rtuRole, UnitId: unit, Addr: addr, Quantity: qty})
		} else {
			regs, err = r.h.HandleInputRegisters(&modbus.InputRegistersRequest{ClientRole: rtuRole, UnitId: unit, Addr: addr, Quantity: qty})
		}
		if err == nil {
			out = append(out, byte(2*len(regs)))
			for _, w := range regs {
				out = binary.BigEndian.AppendUint16(out, w)
			}
		}
	case 5:
		if qty != 0xFF00 && qty != 0 {
			err = modbus.ErrIllegalDataValue
			break
		}
		_, err = r.h.HandleCoils(&modbus.CoilsRequest{ClientRole: rtuRole, UnitId: unit, Addr: addr, Quantity: 1, IsWrite: true, Args: []bool{qty == 0xFF00}})
		out = append(out, p[:4]...)
	case 15:
		args := make([]bool, qty)
		for i := range args {
			if 5+i/8 < len(p) {
				args[i] = p[5+i/8]&(1<<(i%8)) != 0
			}
		}
		_, err = r.h.HandleCoils(&modbus.CoilsRequest{ClientRole: rtuRole, UnitId: unit, Addr: addr, Quantity: qty, IsWrite: true, Args: args})
		out = append(out, p[:4]...)
	case 6, 16:
		n := uint16(1)
		if fc == 16 {
			n = qty
		}
		_, err = r.h.HandleHoldingRegisters(&modbus.HoldingRegistersRequest{ClientRole: rtuRole, UnitId: unit, Addr: addr, Quantity: n, IsWrite: true})
		out = append(out, p[:4]...)
	}
	if errors.Is(err, errNoReply) {
		return nil
	}
	if err != nil {
		out = []byte{unit, fc | 0x80, exceptionCode(err)}
	}
	return binary.LittleEndian.AppendUint16(out, crc16(out))
}

// crc16 is the Modbus RTU CRC (polynomial 0xA001 reflected, initial 0xFFFF),
// sent low byte first.
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
