package nettest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// MosquittoOptions configure StartMosquitto.
type MosquittoOptions struct {
	// Port to listen on, on 127.0.0.1; 0 picks a free one.
	Port int
	// Config is appended to the generated configuration (a listener on
	// Port, anonymous access, no persistence, errors logged), e.g.
	// "max_queued_messages 0\n" or the listener's cafile/certfile/keyfile.
	Config string
}

// Mosquitto is a mosquitto process on a loopback port.
type Mosquitto struct {
	t    TB
	bin  string
	addr string
	conf string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// StartMosquitto runs mosquitto with a generated configuration and waits
// until it accepts connections; the process is killed at cleanup, and its
// log is shown if the test failed. A missing mosquitto binary fails the
// test, or skips it when PLANTROOM_SKIP_MOSQUITTO=1.
func StartMosquitto(t TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := mosquittoBinary()
	if bin == "" {
		if os.Getenv("PLANTROOM_SKIP_MOSQUITTO") == "1" {
			t.Skip("mosquitto not installed (PLANTROOM_SKIP_MOSQUITTO=1)")
		}
		t.Fatalf("mosquitto not installed: apt-get install mosquitto (or PLANTROOM_SKIP_MOSQUITTO=1 to skip)")
	}
	port := opts.Port
	if port == 0 {
		port = FreePort(t)
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\n%s", port, opts.Config)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("cannot write mosquitto config: %v", err)
	}
	m := &Mosquitto{t: t, bin: bin, addr: fmt.Sprintf("127.0.0.1:%d", port), conf: conf}
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() && m.out != nil && m.out.Len() > 0 {
			t.Logf("mosquitto on %s:\n%s", m.addr, m.out)
		}
	})
	m.Start()
	return m
}

// MosquittoBinary is the mosquitto executable StartMosquitto runs, "" when
// it is not installed.
func MosquittoBinary() string { return mosquittoBinary() }

// mosquittoBinary finds mosquitto on PATH or where Debian installs it
// (/usr/sbin is not on every user's PATH); "" if it is not installed.
func mosquittoBinary() string {
	if bin, err := exec.LookPath("mosquitto"); err == nil {
		return bin
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Start starts the process again after Stop, on the same port with the same
// configuration, and waits until it accepts connections. It does nothing
// while the process runs.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.mu.Lock()
	if m.cmd != nil {
		m.mu.Unlock()
		return
	}
	out := &bytes.Buffer{}
	if m.out != nil {
		out = m.out // keep the earlier runs' log
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		m.mu.Unlock()
		m.t.Fatalf("cannot start mosquitto: %v", err)
	}
	m.cmd, m.out = cmd, out
	m.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			m.Stop()
			m.t.Fatalf("mosquitto did not listen on %s: %v\n%s", m.addr, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is the broker's host:port.
func (m *Mosquitto) Addr() string { return m.addr }

// URL is the broker's tcp:// URL.
func (m *Mosquitto) URL() string { return "tcp://" + m.addr }

// Stop kills the process and waits for it. Idempotent.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	cmd := m.cmd
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	cmd.Wait()
}
