package mqtttest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Mosquitto is a mosquitto process on a free loopback port, anonymous
// access, no persistence.
type Mosquitto struct {
	t    testing.TB
	addr string
	conf string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// StartMosquitto starts mosquitto or skips the test when it is not
// installed.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Skip("mosquitto is not installed")
	}
	port := FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nmax_queued_messages 100000\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("cannot write mosquitto config: %v", err)
	}
	m := &Mosquitto{t: t, addr: fmt.Sprintf("127.0.0.1:%d", port), conf: conf}
	m.start(bin)
	t.Cleanup(m.Stop)
	return m
}

func (m *Mosquitto) start(bin string) {
	m.t.Helper()
	out := &bytes.Buffer{}
	cmd := exec.Command(bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("cannot start mosquitto: %v", err)
	}
	m.mu.Lock()
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
			m.t.Fatalf("mosquitto did not listen on %s: %v\n%s", m.addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is the broker's host:port.
func (m *Mosquitto) Addr() string { return m.addr }

// URL is the broker's tcp:// URL.
func (m *Mosquitto) URL() string { return "tcp://" + m.addr }

// Stop terminates the process and waits for it. Idempotent.
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
