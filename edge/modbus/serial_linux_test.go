package modbus

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/internal/testenv"
)

// optOutPTY skips the serial-line tests on a machine without
// pseudo-terminals; without it they fail there.
const optOutPTY = "PLANTROOM_SKIP_PTY"

// openPTY opens a pseudo-terminal pair: the poller opens the returned
// device path as its serial port, the test plays the line behind it on the
// master side.
func openPTY(t testing.TB) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		testenv.Missing(t, optOutPTY, "pseudo-terminals (/dev/ptmx): %v", err)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		m.Close()
		testenv.Missing(t, optOutPTY, "a pseudo-terminal number (TIOCGPTN): %v", e)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		m.Close()
		testenv.Missing(t, optOutPTY, "unlocking a pseudo-terminal (TIOCSPTLCK): %v", e)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// bridge carries bytes between a pty master and a simulated RTU-over-TCP
// device until the test ends: the device sits on the serial line.
func bridge(t testing.TB, m *os.File, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(m, c) }()
	go func() {
		defer wg.Done()
		buf := make([]byte, 256)
		for {
			n, err := m.Read(buf)
			if n > 0 {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if errors.Is(err, syscall.EIO) { // no slave side open (yet, or between reconnects)
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); m.Close(); wg.Wait() })
}

// TestSerialRTU polls a simulated meter through a real serial port (a
// pseudo-terminal) set to 19200 8E1, and a unit on a line that stays
// silent: a timeout, then offline.
func TestSerialRTU(t *testing.T) {
	b := startSim(t, sim.DeviceConfig{ID: "meter", Template: "sdm630", Transport: sim.TransportRTUOverTCP, UnitID: 7})
	m, port := openPTY(t)
	bridge(t, m, b.Addr("meter"))
	silent, silentPort := openPTY(t)
	defer silent.Close()

	ts := shippedTemplates(t)
	meter := Device{ID: "meter", Template: ts["sdm630"], Address: "rtu://" + port + "?baud=19200&parity=E", UnitID: 7,
		PollInterval: 20 * time.Millisecond, Timeout: time.Second}
	dead := Device{ID: "dead", Template: ts["pump-vfd"], Address: "rtu://" + silentPort, UnitID: 1,
		PollInterval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond}
	rec := newRecorder()
	p := startPoller(t, rec, Options{MaxGap: DefaultMaxGap}, meter, dead)
	eventually(t, 5*time.Second, "two meter polls", func() bool { return rec.count("meter") >= 2 })
	compareWithModel(t, b, meter, rec.lastReadings("meter"))
	eventually(t, 5*time.Second, "silent unit offline", func() bool { return len(rec.stateLog("dead")) == 1 })
	if s := p.Stats()["dead"]; s.Errors[CauseTimeout] == 0 || s.Online {
		t.Errorf("silent unit: %+v", s)
	}
	if s := p.Stats()["meter"]; len(s.Errors) != 0 || !s.Online {
		t.Errorf("meter on the serial line: %+v", s)
	}
}

// TestMissingSerialPort: a serial port that does not exist is a connection
// error naming the port; the device goes offline.
func TestMissingSerialPort(t *testing.T) {
	dev := Device{ID: "gone", Template: shippedTemplates(t)["pump-vfd"], Address: "rtu:///dev/ttyUSB-does-not-exist", UnitID: 1,
		PollInterval: 10 * time.Millisecond}
	rec := newRecorder()
	p := startPoller(t, rec, Options{}, dev)
	eventually(t, 5*time.Second, "offline", func() bool { return len(rec.stateLog("gone")) == 1 })
	s := p.Stats()["gone"]
	if s.Errors[CauseConnection] < 3 || !strings.Contains(s.LastError, `cannot open serial port "/dev/ttyUSB-does-not-exist"`) {
		t.Errorf("missing port: %+v", s)
	}
}
